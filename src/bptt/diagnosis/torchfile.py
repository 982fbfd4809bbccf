"""A file written by torch.save(model.state_dict()) read as NumPy arrays, without PyTorch and
without running pickled code.

Since PyTorch 1.6 torch.save writes a zip archive: NAME/data.pkl, a pickle of the dict whose
tensors are persistent references ("storage", its type, a key, a device, its element count) to
the raw bytes in NAME/data/KEY, rebuilt by torch._utils._rebuild_tensor_v2(storage, offset, size,
stride, ...); NAME/byteorder says the bytes' order. The pickle is read by an Unpickler that knows
only those few names (an OrderedDict, the rebuild functions, the storage types) and refuses every
other one, which is what torch.load(weights_only=True) allows for a state dict; nothing in the
file can name a function that runs. Each tensor's view (offset, size, stride) is checked against
its storage before it is copied out. The older format (before 1.6, not a zip) is refused.
"""
from __future__ import annotations

import collections
import io
import pickle
import zipfile

import numpy as np

from ..files import printable
from ..validate import too_big

STORAGES = {"DoubleStorage": "f8", "FloatStorage": "f4", "HalfStorage": "f2", "LongStorage": "i8",
            "IntStorage": "i4", "ShortStorage": "i2", "CharStorage": "i1", "ByteStorage": "u1",
            "BoolStorage": "?"}  # torch's typed storages -> NumPy's element types


class Refused(ValueError):
    """What the file holds that a state dict of plain tensors does not."""


class _Storage:
    """A storage type named in the pickle (torch.FloatStorage, ...): its NumPy element type."""

    def __init__(self, name):
        if name not in STORAGES:
            raise Refused(f"a tensor of torch.{name}, which has no NumPy element type")
        self.dtype = np.dtype(STORAGES[name])


def _tensor(storage, offset, size, stride, requires_grad=False, hooks=None, metadata=None):
    """torch._utils._rebuild_tensor_v2 for a NumPy storage: the view, checked, as its own array."""
    size, stride = tuple(size), tuple(stride)
    if len(size) != len(stride) or not all(isinstance(v, int) and v >= 0 for v in (offset, *size, *stride)):
        raise Refused(f"a tensor of size {size} and stride {stride} at offset {offset}")
    n = int(np.prod(size, dtype=object))
    if n and offset + sum((s - 1) * d for s, d in zip(size, stride)) >= storage.size:
        raise Refused(f"a tensor of size {size} and stride {stride} at offset {offset} beyond its storage "
                      f"of {storage.size} elements")
    too_big(f"a tensor of size {size}", n)
    if n == 0:
        return np.zeros(size, storage.dtype.newbyteorder("="))
    view = np.lib.stride_tricks.as_strided(storage[offset:], size, [d * storage.itemsize for d in stride],
                                           writeable=False)
    return view.astype(storage.dtype.newbyteorder("="), order="C")


def _parameter(data, requires_grad=False, hooks=None):
    """torch._utils._rebuild_parameter: a parameter is its tensor."""
    return data


ALLOWED = {("collections", "OrderedDict"): collections.OrderedDict,
           ("torch._utils", "_rebuild_tensor_v2"): _tensor,
           ("torch._utils", "_rebuild_parameter"): _parameter}


class _Unpickler(pickle.Unpickler):
    def __init__(self, data, archive, root, order):
        super().__init__(io.BytesIO(data))
        self.archive, self.root, self.order, self.storages = archive, root, order, {}

    def find_class(self, module, name):
        if module == "torch" and name.endswith("Storage"):
            return _Storage(name)
        if (module, name) not in ALLOWED:
            raise Refused(f"it names {module}.{name}, which a state dict of tensors does not hold")
        return ALLOWED[module, name]

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage" and isinstance(pid[1], _Storage)
                and isinstance(pid[2], str) and isinstance(pid[4], int) and pid[4] >= 0):
            raise Refused(f"a reference {str(pid)[:60]} that is no tensor storage")
        kind, key, count = pid[1], pid[2], pid[4]
        if key not in self.storages:
            name = f"{self.root}/data/{key}"
            try:
                raw = self.archive.read(name)
            except KeyError:
                raise Refused(f"no entry {name} for a tensor's storage") from None
            dtype = kind.dtype.newbyteorder(self.order)
            if len(raw) < count * dtype.itemsize:
                raise Refused(f"the storage {name} holds {len(raw)} bytes, not the {count * dtype.itemsize} of "
                              f"{count} elements")
            self.storages[key] = np.frombuffer(raw, dtype, count)
        return self.storages[key]


def read(raw: bytes, path, limit: int) -> dict:
    """{name: array} of a state dict saved by torch.save; a ValueError naming what is wrong."""
    what = f"cannot load {printable(str(path))} safely as a PyTorch state dict"
    try:
        if not zipfile.is_zipfile(io.BytesIO(raw)):
            raise Refused("it is not the zip archive torch.save writes (since PyTorch 1.6); load it and save it "
                          "again with torch.save(model.state_dict(), path)")
        with zipfile.ZipFile(io.BytesIO(raw)) as archive:
            if sum(i.file_size for i in archive.infolist()) > limit:
                raise Refused(f"its entries unpack to more than {limit} bytes")
            pickles = [n for n in archive.namelist() if n.endswith("/data.pkl") and n.count("/") == 1]
            if len(pickles) != 1:
                raise Refused("no single NAME/data.pkl in the archive")
            root = pickles[0][:-len("/data.pkl")]
            order = archive.read(f"{root}/byteorder").decode() if f"{root}/byteorder" in archive.namelist() \
                else "little"
            if order not in ("little", "big"):
                raise Refused(f"byte order {order[:20]!r}")
            sd = _Unpickler(archive.read(pickles[0]), archive, root, "<" if order == "little" else ">").load()
    except Exception as e:  # a damaged archive or pickle fails in the zip, zlib, struct or pickle modules
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise ValueError(f"{what}: {first[:200]}") from None
    if not isinstance(sd, dict) or not sd:
        raise ValueError(f"{printable(str(path))} holds {type(sd).__name__}, not a state dict: save "
                         "model.state_dict() with torch.save")
    bad = [k for k, v in sd.items() if not isinstance(k, str) or not isinstance(v, np.ndarray)
           or v.dtype.kind not in "fiub"]
    if bad:
        raise ValueError(f"{printable(str(path))} is not a state dict of tensors: its entry {str(bad[0])[:60]!r} holds "
                         f"{type(sd[bad[0]]).__name__}; save model.state_dict() with torch.save")
    return dict(sd)
