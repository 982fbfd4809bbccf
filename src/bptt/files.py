"""Every file bptt reads from a path a user gives, and every file it rewrites, goes through here.

- Reading: `read_bytes` / `read_text` / `read_json` open regular files only (a FIFO, a device such as
  /dev/zero, a folder is a ValueError before anything blocks), never an integer file descriptor
  (TypeError: paths are str or os.PathLike), and read at most a given number of bytes. JSON is
  read with its nesting bounded (`loads_json`), so no file sends the parser into deep recursion.
- Writing: `write_atomic` writes a temporary file in the same folder, syncs it and renames it over
  the old one (os.replace), so a kill at any instant leaves the old file or the new one, never
  half of one; `clean_stale` removes the temporaries of processes that died before renaming.
- Names: `file_name` turns a name from a spec or a store into one safe file name, or refuses it.
- Locks: `folder_lock` lets one process at a time write into a run or sweep folder.
"""
from __future__ import annotations

import contextlib
import json
import operator
import os
import re
import stat
import sys
from pathlib import Path

MAX_JSON_DEPTH = 32
MAX_NAME = 100  # characters of a name from a spec or a store
TMP = re.compile(r"^\..+\.tmp(\d+)$")  # the temporary files of write_atomic: .NAME.tmpPID


def _shown(v, width=60) -> str:
    """repr(v) on one line, cut to width characters (validate.show, which imports this module)."""
    text = " ".join(repr(v).split())
    return text if len(text) <= width else text[:width - 3] + "..."


def _count(name, v, high) -> int:
    """v as an int in 0..high (an integer, Python or NumPy, not a bool); else a ValueError."""
    try:
        n = operator.index(v) if not isinstance(v, bool) else None
    except TypeError:
        n = None
    if n is None or not 0 <= n <= high:
        raise ValueError(f"{name} must be an integer in 0..{high}, got {_shown(v)}")
    return n


def as_path(path, what: str) -> Path:
    """path as a Path; TypeError for anything but str or os.PathLike (an integer would be a file descriptor)."""
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"{what} must be a path (str or os.PathLike), got {type(path).__name__} {_shown(path)}")
    return Path(path)


def run_folder(path) -> Path:
    """A run folder given on the command line (what `bptt train --out` wrote), or a ValueError that
    says it does not exist or is no folder."""
    folder = as_path(path, "a run folder")
    try:
        folder.stat()
    except FileNotFoundError:
        pass
    except OSError as e:  # a name too long for the file system, no permission
        raise ValueError(f"cannot read the run folder {printable(folder)}: {e.strerror or e}") from None
    if not folder.exists():
        raise ValueError(f"{printable(folder)} does not exist: give a folder written by `bptt train --out`")
    if not folder.is_dir():
        raise ValueError(f"{printable(folder)} is not a folder: give a folder written by `bptt train --out`")
    return folder


def read_bytes(path, what: str, limit: int) -> bytes:
    """The bytes of the regular file at path, at most limit of them (more is a ValueError).
    what names the file in messages ("the config file", "the sweep spec")."""
    p = as_path(path, what)
    limit = _count("limit", limit, sys.maxsize - 1)
    shown = printable(p)
    try:
        fd = os.open(p, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))  # a FIFO opens without waiting for a writer
    except FileNotFoundError:
        raise ValueError(f"cannot read {what} {shown}: it does not exist") from None
    except OSError as e:
        raise ValueError(f"cannot read {what} {shown}: {e.strerror or e}") from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise ValueError(f"cannot read {what} {shown}: it is {kind_of(mode)}, not a regular file")
    with os.fdopen(fd, "rb") as f:
        raw = f.read(limit + 1)
    if len(raw) > limit:
        raise ValueError(f"{what} {shown} is longer than {limit:,} bytes")
    return raw


def kind_of(mode) -> str:
    """What a file of this st_mode is, in words ("a folder", "a named pipe (FIFO)", ...)."""
    mode = _count("mode", mode, 2**32 - 1)
    for test, words in ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a named pipe (FIFO)"),
                        (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                        (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return words
    return "a special file"


def read_text(path, what: str, limit: int) -> str:
    """The UTF-8 text of the regular file at path, at most limit bytes (see read_bytes)."""
    raw = read_bytes(path, what, limit)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ValueError(f"{what} {printable(path)} is not UTF-8 text "
                         f"(byte {e.start} is {raw[e.start:e.start + 1]!r})") from None
    if "\x00" in text:
        raise ValueError(f"{what} {printable(path)} is not a text file: it holds NUL characters")
    return text


def nesting(text: str) -> int:
    """An upper bound on how deep brackets and braces nest in text (strings not excluded)."""
    deepest = depth = 0
    for ch in re.findall(r"[\[\]{}]", text):
        depth = depth + 1 if ch in "[{" else max(depth - 1, 0)
        deepest = max(deepest, depth)
    return deepest


def loads_json(text: str, what: str, depth: int = MAX_JSON_DEPTH):
    """JSON text as Python values; nesting deeper than depth, or text that is not JSON, is a ValueError."""
    if nesting(text) > depth:
        raise ValueError(f"{what} nests brackets {nesting(text)} deep: it may nest at most {depth} deep")
    try:
        return json.loads(text)
    except ValueError as e:
        raise ValueError(f"{what} is not valid JSON ({e})") from None


def parse_toml(text: str, what: str, depth: int) -> dict:
    """TOML text as a dict; nesting deeper than depth (brackets or dotted keys, checked before the
    parser sees it) or text that is not TOML is a ValueError naming what."""
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib
    if not isinstance(text, str):
        raise TypeError(f"{what} must be TOML text (a str), got {type(text).__name__}")
    dots = max((line.split("=")[0].count(".") for line in text.splitlines()), default=0)
    deep = max(nesting(text), dots)
    if deep > depth:
        raise ValueError(f"{what} nests brackets or dotted keys {deep} deep: it may nest at most {depth} deep")
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ValueError(f"{what} is not valid TOML: {e}") from None


def read_json(path, what: str, limit: int = 10_000_000, depth: int = MAX_JSON_DEPTH):
    """The JSON in the regular file at path (read_text, then loads_json)."""
    return loads_json(read_text(path, what, limit), f"{what} {printable(path)}", depth)


def write_atomic(path, data) -> Path:
    """Write data (bytes, str as UTF-8, or a function of a binary file) to path atomically: a
    temporary file in the same folder, synced, then renamed over path; returns path."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            if callable(data):
                data(f)
            else:
                f.write(data.encode("utf-8") if isinstance(data, str) else data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        _sync_folder(path.parent)
    except OSError as e:  # a folder in the way, a full disk, no permission: its name and why, in one line
        raise ValueError(f"cannot write {printable(path)}: {e.strerror or e}") from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    return path


def _sync_folder(folder: Path) -> None:
    """Make a rename in folder durable (a no-op where folders cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def clean_stale(folder) -> list[Path]:
    """Remove the temporaries of write_atomic (.NAME.tmpPID) in folder whose process is gone; returns them."""
    removed = []
    try:
        entries = list(Path(folder).iterdir())
    except OSError as e:
        raise ValueError(f"cannot list the folder {printable(folder)}: {e.strerror or e}") from None
    for p in entries:
        m = TMP.match(p.name)
        if m and p.is_file() and not _alive(int(m.group(1))):
            with contextlib.suppress(FileNotFoundError):
                p.unlink()
                removed.append(p)
    return removed


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return pid < 2**31  # another user's process holds it; a pid out of range was never one
    return True


def file_name(name, what: str) -> str:
    """name, checked to be one safe file name: a non-empty string of at most MAX_NAME printable
    characters, no path separator, not starting with a dot. Anything else is a ValueError."""
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"{what} must be a non-empty string, got {_shown(name)}")
    bad = next((c for c in name if c in "/\\" or not c.isprintable()), None)
    if bad is not None:
        raise ValueError(f"{what} {_shown(name)} holds {_shown(bad)}: a name is one file name, without path separators "
                         "or control characters")
    if name.startswith("."):
        raise ValueError(f"{what} {_shown(name)} starts with a dot: a name is a visible file name")
    if len(name) > MAX_NAME:
        raise ValueError(f"{what} is {len(name)} characters long: a name has at most {MAX_NAME}")
    return name


def printable(text: str) -> str:
    """text with every character that is not printable (escapes, newlines, NUL) written as its escape."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in str(text))


@contextlib.contextmanager
def folder_lock(folder, also=None):
    """Hold an exclusive advisory lock on folder/.lock (and on the file `also`, when given) while the
    block runs; another holder (`bptt train` or `bptt sweep`) is a ValueError. The OS releases the
    lock when the process dies, even by SIGKILL."""
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock
        yield
        return
    folder = Path(folder)
    paths = [folder / ".lock"] + ([Path(also)] if also is not None else [])
    with contextlib.ExitStack() as stack:
        for held in paths:
            handle = stack.enter_context(open(held, "ab"))
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                real = Path(os.path.realpath(held))
                same = f" (the same file as {real})" if real != held.absolute() else ""
                raise ValueError(f"another `bptt train` or `bptt sweep` is writing to {held}{same}; "
                                 "wait for it to finish or stop it") from None
            stack.callback(fcntl.flock, handle, fcntl.LOCK_UN)
        yield
