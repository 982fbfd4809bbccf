"""`bptt diagnose` through the command line's entry point: a saved state dict and an input file,
the network rebuilt and its loss equal to PyTorch's on the same weights, the page written, and
each bad input a one-line error with exit status 2."""
import re
import subprocess
import sys

import numpy as np
import pytest
from conftest import cli, need

from bptt.cli import main


def _net(torch, kind="LSTM", layers=2, bi=True, emb=True, bias=True, extra=False, D=5, H=6, O=3, **options):
    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            if emb:
                self.emb = torch.nn.Embedding(11, D)
            self.enc = getattr(torch.nn, kind)(D, H, num_layers=layers, bidirectional=bi, batch_first=True,
                                               bias=bias, **options)
            if extra:
                self.att = torch.nn.Linear(H * (2 if bi else 1), 1)
            self.out = torch.nn.Linear(H * (2 if bi else 1), O)

        def forward(self, x):
            return self.out(self.enc(self.emb(x) if emb else x)[0])

    torch.manual_seed(3)
    return Net().double().eval()


def _save(tmp_path, torch, net, x, y):
    torch.save(net.state_dict(), tmp_path / "net.pt")
    np.savez(tmp_path / "batch.npz", x=x, y=y)
    return tmp_path / "net.pt", tmp_path / "batch.npz"


def _loss(torch, net, x, y, one_hot=None):
    """The cross-entropy summed over the scored steps, by PyTorch on the saved network itself."""
    torch.set_grad_enabled(False)
    xt = torch.as_tensor(x)
    if one_hot:
        xt = torch.nn.functional.one_hot(xt, one_hot).double()
    logits = net(xt)
    yt = torch.as_tensor(y)
    keep = yt >= 0
    loss = torch.nn.functional.cross_entropy(logits[:, -1], yt, reduction="sum") if yt.ndim == 1 else \
        torch.nn.functional.cross_entropy(logits[keep], yt[keep], reduction="sum")
    torch.set_grad_enabled(True)
    return float(loss)


def _printed_loss(out):
    return float(re.search(r"^loss (\S+);", out, re.M).group(1))


@pytest.mark.parametrize("kind, bi, per_step, options", [
    ("LSTM", True, True, {}), ("GRU", False, False, {}), ("RNN", True, True, {"nonlinearity": "relu"})])
def test_the_loss_is_pytorch_s_and_the_page_is_written(tmp_path, capsys, kind, bi, per_step, options):
    torch = need("torch")
    net = _net(torch, kind, bi=bi, extra=True, **options)
    rng = np.random.default_rng(0)
    x = rng.integers(0, 11, (3, 9))
    y = rng.integers(0, 3, (3, 9)) if per_step else rng.integers(0, 3, 3)
    if per_step:
        y[:, :4] = -1
    pt, npz = _save(tmp_path, torch, net, x, y)
    argv = ["diagnose", "--torch", pt, "--input", npz, "--out", tmp_path / "page.html"]
    cli(argv, capsys, "one Linear head", "2 of them ('att', 'out')", "--head")  # the attention's is (1, width) too
    argv += ["--head", "out"] + (["--nonlinearity", "relu"] if options else [])
    assert main([str(a) for a in argv]) == 0
    out = capsys.readouterr().out
    assert abs(_printed_loss(out) - _loss(torch, net, x, y)) <= 1e-5 * abs(_loss(torch, net, x, y))
    assert f"nn.{kind}(5, 6, num_layers=2" in out and "'enc', head 'out' (3 classes)" in out
    assert "not used" in out and "att.weight, att.bias" in out  # the attention's weights play no part
    assert (f"{int((y >= 0).sum())} scored steps" in out) == per_step
    page = (tmp_path / "page.html").read_text()
    assert page.startswith("<!DOCTYPE html>") and page.count("<svg") >= 3 * (4 if bi else 2)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary file left


def test_vectors_and_one_hot_ids_without_an_embedding(tmp_path, capsys):
    torch = need("torch")
    net = _net(torch, "GRU", layers=1, bi=False, emb=False, bias=False)
    rng = np.random.default_rng(1)
    for x in (rng.normal(size=(2, 7, 5)), rng.integers(0, 5, (2, 7))):
        y = rng.integers(0, 3, (2, 7))
        pt, npz = _save(tmp_path, torch, net, x, y)
        assert main(["diagnose", "--torch", str(pt), "--input", str(npz)]) == 0
        out = capsys.readouterr().out
        want = _loss(torch, net, x, y, one_hot=5 if x.dtype.kind == "i" else None)
        assert abs(_printed_loss(out) - want) <= 1e-5 * abs(want)
        assert ("one-hot columns of 5" in out) == (x.ndim == 2) and "bias=False" in out


def test_the_installed_entry_point(tmp_path):
    torch = need("torch")
    net = _net(torch, layers=1, bi=False)
    rng = np.random.default_rng(2)
    pt, npz = _save(tmp_path, torch, net, rng.integers(0, 11, (2, 6)), rng.integers(0, 3, 2))
    run = subprocess.run([sys.executable, "-m", "bptt.cli", "diagnose", "--torch", str(pt), "--input", str(npz)],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert "bptt diagnosis of a PyTorch LSTM" in run.stdout and "advice:" in run.stdout


def _files(tmp_path, torch, net=None, x=None, y=None):
    net = net or _net(torch, layers=1, bi=False)
    rng = np.random.default_rng(3)
    return _save(tmp_path, torch, net, rng.integers(0, 11, (2, 6)) if x is None else x,
                 rng.integers(0, 3, 2) if y is None else y)


def test_each_bad_input_is_one_line(tmp_path, capsys):
    torch = need("torch")
    pt, npz = _files(tmp_path, torch)
    run = lambda *argv, words: cli(["diagnose", *argv], capsys, *words)  # noqa: E731
    run("--torch", tmp_path / "missing.pt", "--input", npz, words=["missing.pt", "does not exist"])
    run("--torch", pt, "--input", tmp_path / "missing.npz", words=["missing.npz"])
    (tmp_path / "junk.pt").write_bytes(b"not a torch file at all")
    run("--torch", tmp_path / "junk.pt", "--input", npz, words=["cannot load", "safely", "not the zip archive"])

    class Evil:
        def __reduce__(self):
            return (print, ("pickled code ran",))

    torch.save({"w": Evil()}, tmp_path / "evil.pt")
    out = run("--torch", tmp_path / "evil.pt", "--input", npz, words=["cannot load", "safely", ".print, which a state dict"])
    assert "pickled code ran" not in capsys.readouterr().out + out
    _beyond(torch, tmp_path / "beyond.pt")
    run("--torch", tmp_path / "beyond.pt", "--input", npz, words=["cannot load", "safely", "beyond its storage of 4"])
    sd = _net(torch, layers=1, bi=False).state_dict()
    torch.save({k: v for k, v in sd.items() if k != "enc.bias_hh_l0"}, tmp_path / "half_bias.pt")
    run("--torch", tmp_path / "half_bias.pt", "--input", npz, words=["do not make one nn.LSTM", "missing enc.bias_hh_l0"])
    torch.save({"out.weight": torch.zeros(3, 6)}, tmp_path / "none.pt")
    run("--torch", tmp_path / "none.pt", "--input", npz, words=["no recurrent module", "weight_hh_l0"])
    two = dict(net_sd := _net(torch, layers=1, bi=False).state_dict())
    two.update({"enc2." + k[4:]: v for k, v in net_sd.items() if k.startswith("enc.")})
    torch.save(two, tmp_path / "two.pt")
    run("--torch", tmp_path / "two.pt", "--input", npz, words=["2 recurrent modules", "--prefix"])
    assert main(["diagnose", "--torch", str(tmp_path / "two.pt"), "--input", str(npz), "--prefix", "enc2"]) == 0
    run("--torch", tmp_path / "two.pt", "--input", npz, "--prefix", "dec", words=["--prefix 'dec'", "'enc'"])
    torch.save({k: v for k, v in net_sd.items() if not k.startswith("out.")}, tmp_path / "headless.pt")
    run("--torch", tmp_path / "headless.pt", "--input", npz, words=["one Linear head", "(O, 6)", "none"])
    np.savez(tmp_path / "wide.npz", x=np.zeros((2, 6, 4)), y=np.zeros(2, dtype=int))
    run("--torch", pt, "--input", tmp_path / "wide.npz", words=["4 values", "D = 5"])
    np.savez(tmp_path / "big_ids.npz", x=np.full((2, 6), 11), y=np.zeros(2, dtype=int))
    run("--torch", pt, "--input", tmp_path / "big_ids.npz", words=["id 11", "11 rows"])
    np.savez(tmp_path / "bad_y.npz", x=np.zeros((2, 6), dtype=int), y=np.zeros((2, 5), dtype=int))
    run("--torch", pt, "--input", tmp_path / "bad_y.npz", words=["y must be", "(2, 6)", "(2,)"])
    np.savez(tmp_path / "class.npz", x=np.zeros((2, 6), dtype=int), y=np.full(2, 3))
    run("--torch", pt, "--input", tmp_path / "class.npz", words=["class 3", "O = 3"])
    np.savez(tmp_path / "unscored.npz", x=np.zeros((2, 6), dtype=int), y=np.full((2, 6), -1))
    run("--torch", pt, "--input", tmp_path / "unscored.npz", words=["scores no step"])
    np.savez(tmp_path / "nox.npz", y=np.zeros(2, dtype=int))
    run("--torch", pt, "--input", tmp_path / "nox.npz", words=["no array x"])
    run("--torch", pt, "--input", npz, "--out", tmp_path, words=["is a folder"])
    run("--torch", pt, "--input", npz, "--out", tmp_path / "no" / "page.html", words=["does not exist"])
    run("--keras", tmp_path / "m.keras", "--input", npz, words=["m.keras"])


def _beyond(torch, path):
    """A state dict whose one tensor, (3,) at offset 2, reaches past its storage of 4 floats."""
    import io
    import pickle
    import zipfile

    class View:
        def __reduce__(self):
            return torch._utils._rebuild_tensor_v2, (Storage(), 2, (3,), (1,), False, {})

    class Storage:
        pass

    class Writer(pickle.Pickler):
        def persistent_id(self, obj):
            return ("storage", torch.FloatStorage, "0", "cpu", 4) if isinstance(obj, Storage) else None

    buf = io.BytesIO()
    Writer(buf, protocol=2).dump({"w": View()})
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("net/data.pkl", buf.getvalue())
        z.writestr("net/byteorder", "little")
        z.writestr("net/data/0", np.arange(4, dtype="<f4").tobytes())


@pytest.mark.parametrize("kind, layers, bi, bias, per_step, dtype", [
    ("LSTM", 2, True, True, True, "float64"), ("GRU", 3, False, True, False, "float64"),
    ("RNN", 2, True, False, True, "float64"), ("LSTM", 2, True, True, False, "float32")])
def test_the_gradients_of_a_saved_network_are_pytorch_s(tmp_path, kind, layers, bi, bias, per_step, dtype):
    """The command's diagnosis (the state dict read without PyTorch, the network rebuilt by bptt)
    gives the recurrent module's gradients that loss.backward() puts in its .grad."""
    torch = need("torch")
    from bptt.diagnosis import diagnosed
    from bptt.diagnosis.statedict import load_state_dict, network, parts, read_input

    net = _net(torch, kind, layers=layers, bi=bi, bias=bias)
    rng = np.random.default_rng(5)
    x = rng.integers(0, 11, (4, 12))
    y = rng.integers(0, 3, (4, 12)) if per_step else rng.integers(0, 3, 4)
    if per_step:
        y[1, :5] = -1
    pt, npz = _save(tmp_path, torch, net, x, y)
    sd = load_state_dict(pt)
    p = parts(sd)
    xs, ys, ids = read_input(npz, p)
    d = diagnosed(network(sd, p, xs, ys, ids, dtype=dtype), lags=False)
    if dtype == "float32":
        net = net.float()
    logits = net(torch.as_tensor(x))
    yt = torch.as_tensor(y)
    loss = torch.nn.functional.cross_entropy(logits[:, -1], yt, reduction="sum") if yt.ndim == 1 else \
        torch.nn.functional.cross_entropy(logits[yt >= 0], yt[yt >= 0], reduction="sum")
    net.zero_grad()
    loss.backward()
    tol = 1e-10 if dtype == "float64" else 1e-5
    loss = float(loss.detach())
    assert abs(d.loss - loss) <= tol * abs(loss)
    theirs = {k: v.grad.numpy() for k, v in net.enc.named_parameters()}
    assert set(d.grads) == set(theirs) and d.agreement is None
    for k, g in theirs.items():
        assert np.max(np.abs(d.grads[k] - g)) <= tol * max(1.0, np.max(np.abs(g))), k


def test_the_command_needs_no_pytorch(tmp_path):
    torch = need("torch")
    pt, npz = _save(tmp_path, torch, _net(torch), np.zeros((2, 6), dtype=int), np.zeros(2, dtype=int))
    script = ("import sys; sys.modules['torch'] = None\n"  # import torch raises ImportError
              "from bptt.cli import main\n"
              f"assert main(['diagnose', '--torch', {str(pt)!r}, '--input', {str(npz)!r}]) == 0\n")
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert "bptt diagnosis of a PyTorch LSTM" in run.stdout


# --- a Keras model file ---------------------------------------------------------------------------

def _keras_files(tmp_path, keras, softmax=False, last_only=False):
    keras.utils.set_random_seed(0)
    layers = [keras.Input((8,), dtype="int32"), keras.layers.Embedding(10, 4),
              keras.layers.LSTM(5, return_sequences=True),
              keras.layers.Bidirectional(keras.layers.GRU(3, return_sequences=not last_only)),
              keras.layers.Dense(3, activation="softmax" if softmax else None)]
    model = keras.Sequential(layers)
    model.save(tmp_path / "m.keras")
    rng = np.random.default_rng(4)
    x = rng.integers(0, 10, (3, 8))
    y = rng.integers(0, 3, 3) if last_only else rng.integers(-1, 3, (3, 8))
    np.savez(tmp_path / "k.npz", x=x, y=y)
    return model, x, y


@pytest.mark.parametrize("softmax, last_only", [(False, False), (True, True)])
def test_a_keras_file_is_diagnosed_as_saved(tmp_path, capsys, softmax, last_only):
    keras = need("keras")
    model, x, y = _keras_files(tmp_path, keras, softmax, last_only)
    assert main(["diagnose", "--keras", str(tmp_path / "m.keras"), "--input", str(tmp_path / "k.npz"),
                 "--out", str(tmp_path / "page.html")]) == 0
    out = capsys.readouterr().out
    p = np.asarray(model(x), dtype=np.float64)  # Keras's own output on the saved weights, its loss by hand
    if not softmax:
        p = np.exp(p - p.max(-1, keepdims=True))
        p /= p.sum(-1, keepdims=True)
    keep = y >= 0
    want = -np.log(p[np.arange(3), y]).sum() if last_only else -np.log(p[keep, y[keep]]).sum()
    assert abs(_printed_loss(out) - want) <= 1e-4 * want
    assert "LSTM(5) -> Bidirectional(GRU(3))" in out and ("probabilities" if softmax else "logits") in out
    assert (tmp_path / "page.html").read_text().count("<svg") >= 9


def test_keras_refusals_are_one_line(tmp_path, capsys):
    keras = need("keras")
    _keras_files(tmp_path, keras)
    npz = tmp_path / "k.npz"
    (tmp_path / "junk.keras").write_bytes(b"not a zip")
    cli(["diagnose", "--keras", tmp_path / "junk.keras", "--input", npz], capsys, "cannot load", "safe_mode=True")
    (tmp_path / "m.h5").write_bytes(b"x")
    cli(["diagnose", "--keras", tmp_path / "m.h5", "--input", npz], capsys, "not a .keras file")
    cli(["diagnose", "--keras", tmp_path / "m.keras", "--input", npz, "--prefix", "lstm"], capsys, "--prefix is for --torch")
    inp = keras.Input((8,), dtype="int32")
    h = keras.layers.Embedding(10, 4)(inp)
    h = keras.layers.Lambda(lambda t: t * 2.0)(h)  # code that safe_mode refuses to run
    keras.Model(inp, keras.layers.Dense(3)(keras.layers.LSTM(5, return_sequences=True)(h))).save(tmp_path / "l.keras")
    cli(["diagnose", "--keras", tmp_path / "l.keras", "--input", npz], capsys, "cannot load", "safely")
    h = keras.layers.LSTM(5, return_sequences=True)(keras.layers.Embedding(10, 4)(inp))
    h = keras.layers.GRU(3, return_sequences=True)(keras.layers.Dense(5)(h))
    keras.Model(inp, keras.layers.Dense(3)(h)).save(tmp_path / "gap.keras")
    cli(["diagnose", "--keras", tmp_path / "gap.keras", "--input", npz], capsys, "not consecutive", "Dense")
    np.savez(tmp_path / "big.npz", x=np.full((3, 8), 10), y=np.zeros(3, dtype=int))
    cli(["diagnose", "--keras", tmp_path / "m.keras", "--input", tmp_path / "big.npz"], capsys, "id 10", "10 rows")


def test_a_damaged_state_dict_is_a_value_error_or_the_same_arrays(tmp_path):
    """Bytes of a saved state dict changed at random places: each read gives the arrays or a
    one-line ValueError, never another exception (the reader's guards, not the luck of the bytes)."""
    torch = need("torch")
    from bptt.diagnosis.statedict import load_state_dict

    pt, _ = _save(tmp_path, torch, _net(torch, layers=1, bi=False), np.zeros((1, 2), dtype=int), np.zeros(1, dtype=int))
    raw = bytearray(pt.read_bytes())
    rng = np.random.default_rng(6)
    refused = 0
    for case in range(300):
        bad = bytearray(raw)
        for i in rng.integers(0, len(bad), rng.integers(1, 4)):
            bad[i] = int(rng.integers(0, 256))
        if case % 3 == 0:  # cut short as well
            bad = bad[:int(rng.integers(1, len(bad)))]
        path = tmp_path / "bad.pt"
        path.write_bytes(bytes(bad))
        try:
            sd = load_state_dict(path)
        except ValueError as e:
            refused += 1
            assert "\n" not in str(e)
        else:
            assert all(isinstance(v, np.ndarray) for v in sd.values())
    assert refused >= 100
