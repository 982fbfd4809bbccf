"""The results store: one SQLite file, DIR/results.sqlite, in WAL mode.

Table `points`, one row per point (key = the hash of its canonical config, see spec.py):
    key, spec (name of the spec that added it), kind, params (JSON), seed, config (canonical JSON),
    status ('pending' | 'ok' | 'failed'), metrics (JSON), error (one line), traceback,
    attempts (results recorded for it), started_at / finished_at (Unix seconds, worker clock),
    seconds (duration inside the worker), worker ("host:pid"), blas_threads, version (bptt on the
    worker), run_id (the run that recorded it), added_at.
Table `runs`, one row per `bptt sweep` invocation: when it started, when its cluster was ready,
when it ended and how (done; incomplete: some points never came back from the cluster;
interrupted; running: the driver died), where it ran, how many
threads, how many points it had to do and how many came back ok or failed.

Every result is its own transaction, committed (and synced) before the next is read, so a driver
killed at any moment loses at most the points still running; a reader (`bptt sweep status`) can
look at the file while a sweep writes to it.
"""
from __future__ import annotations

import contextlib
import json
import socket
import sqlite3
import time
from pathlib import Path

from ..files import loads_json, printable
from ..validate import show

FILENAME = "results.sqlite"
SCHEMA_VERSION = "1"
STATUSES = ("pending", "ok", "failed")

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS points (
    key TEXT PRIMARY KEY,
    spec TEXT NOT NULL,
    kind TEXT NOT NULL,
    params TEXT NOT NULL,
    seed INTEGER NOT NULL,
    config TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('pending', 'ok', 'failed')),
    metrics TEXT,
    error TEXT,
    traceback TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    started_at REAL,
    finished_at REAL,
    seconds REAL,
    worker TEXT,
    blas_threads INTEGER,
    version TEXT,
    run_id INTEGER,
    added_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS points_status ON points (status);
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    spec TEXT NOT NULL,
    spec_text TEXT NOT NULL,
    state TEXT NOT NULL,
    started_at REAL NOT NULL,
    ready_at REAL,
    finished_at REAL,
    scheduler TEXT,
    threads INTEGER,
    todo INTEGER NOT NULL,
    ok INTEGER NOT NULL DEFAULT 0,
    failed INTEGER NOT NULL DEFAULT 0,
    host TEXT,
    version TEXT
);
"""


def store_path(out) -> Path:
    return Path(out) / FILENAME


class Store:
    """A results.sqlite, opened for reading and writing, or for reading only (readonly=True, Store.open)."""

    def __init__(self, path, *, create=True, readonly=False):
        path = Path(path)
        try:  # a name too long for the file system, a folder without permission: a sentence
            there, is_file = path.exists(), path.is_file()
            existing = is_file and path.stat().st_size > 0
        except OSError as e:
            raise ValueError(f"cannot open the sweep store {str(path)!r}: {e.strerror or e}") from None
        if not create and not there:
            raise ValueError(f"no sweep results at {str(path)!r}: run `bptt sweep SPEC.toml --out DIR` first")
        self.path = path
        if there and not is_file:
            raise ValueError(f"{printable(path)} is not a file: a sweep's results.sqlite is an SQLite database")
        if existing:
            with open(path, "rb") as f:
                head = f.read(16)
        if existing and head != b"SQLite format 3\x00":
            raise ValueError(f"{printable(path)} is not a bptt sweep store: it is not an SQLite database")
        with self._errors("open"):
            if readonly:
                self.db = sqlite3.connect(f"{path.absolute().as_uri()}?mode=ro", uri=True, isolation_level=None,
                                          timeout=60)
            else:
                self.db = sqlite3.connect(str(path), isolation_level=None, timeout=60)
            if existing:
                self._ours(path)
            self.db.row_factory = sqlite3.Row
            self.db.execute("PRAGMA busy_timeout = 60000")
            if not readonly:
                self._prepare(path)
            found = self.db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        if found is None or found[0] != SCHEMA_VERSION:
            raise ValueError(f"{path} has schema version {found and found[0]}; this bptt reads version {SCHEMA_VERSION}")

    def _prepare(self, path):
        mode = self.db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if mode.lower() != "wal":
            raise ValueError(f"{path}: cannot switch SQLite to WAL mode (got {show(mode)}); is it on a network file system?")
        self.db.execute("PRAGMA synchronous = FULL")
        self.db.executescript(SCHEMA)
        self.db.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (SCHEMA_VERSION,))

    @contextlib.contextmanager
    def _errors(self, doing):
        """SQLite's errors (a full disk, a damaged or unwritable file) as a one-line ValueError."""
        try:
            yield
        except sqlite3.DatabaseError as e:
            raise ValueError(f"cannot {doing} the sweep store {self.path}: {e}") from None

    def _ours(self, path):
        """Refuse an SQLite file that another program wrote (before any table is created in it)."""
        tables = {r[0] for r in self.db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if not {"meta", "points", "runs"} <= tables:
            self.db.close()
            shown = ", ".join(sorted(tables)[:5]) or "none"
            raise ValueError(f"{path} is an SQLite database of another program (its tables: {shown}), "
                             "not a bptt sweep store; give a folder of its own")

    @classmethod
    def open(cls, out) -> "Store":
        """The store of an existing sweep folder, opened for reading only (ValueError when it has none)."""
        return cls(store_path(out), create=False, readonly=True)

    def close(self):
        self.db.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # --- points -------------------------------------------------------------------------
    def add_points(self, spec_name: str, points) -> int:
        """Insert the points not yet in the store as 'pending'; returns how many were new."""
        now = time.time()
        with self._errors("write to"), self.db:
            self.db.execute("BEGIN IMMEDIATE")
            before = self.db.total_changes
            self.db.executemany(
                "INSERT OR IGNORE INTO points (key, spec, kind, params, seed, config, status, added_at) "
                "VALUES (?, ?, ?, ?, ?, ?, 'pending', ?)",
                [(p.key, spec_name, p.config["kind"], json.dumps(p.params, sort_keys=True), p.seed,
                  json.dumps(p.config, sort_keys=True, separators=(",", ":")), now) for p in points])
            return self.db.total_changes - before

    def statuses(self, keys) -> dict:
        """key -> status for the given keys that are in the store."""
        keys = list(keys)
        out = {}
        for i in range(0, len(keys), 500):
            chunk = keys[i:i + 500]
            q = f"SELECT key, status FROM points WHERE key IN ({','.join('?' * len(chunk))})"
            out.update(dict(self.db.execute(q, chunk).fetchall()))
        return out

    def record(self, key: str, result: dict, run_id: int | None = None) -> None:
        """Store one point's result and commit it before returning."""
        metrics = result.get("metrics")
        with self._errors("write to"):
            cur = self._record(key, result, metrics, run_id)
        if cur.rowcount != 1:
            raise KeyError(f"point {key} is not in {self.path}")

    def _record(self, key, result, metrics, run_id):
        return self.db.execute(
            "UPDATE points SET status = ?, metrics = ?, error = ?, traceback = ?, attempts = attempts + 1, "
            "started_at = ?, finished_at = ?, seconds = ?, worker = ?, blas_threads = ?, version = ?, run_id = ? "
            "WHERE key = ?",
            (result["status"], None if metrics is None else json.dumps(metrics, allow_nan=False),
             result.get("error"), result.get("traceback"), result.get("started_at"), result.get("finished_at"),
             result.get("seconds"), result.get("worker"), result.get("blas_threads"), result.get("version"),
             run_id, key))

    def rows(self, status=None) -> list[dict]:
        """Every point as a dict, params and metrics decoded from JSON (optionally one status only)."""
        q, args = "SELECT * FROM points", ()
        if status is not None:
            q, args = q + " WHERE status = ?", (status,)
        out = []
        with self._errors("read"):
            found = self.db.execute(q + " ORDER BY added_at, rowid", args).fetchall()
        for r in found:
            d = dict(r)
            d["params"] = loads_json(d["params"], f"{self.path}: the params of point {d['key']}")
            d["metrics"] = (loads_json(d["metrics"], f"{self.path}: the metrics of point {d['key']}")
                            if d["metrics"] is not None else None)
            out.append(d)
        return out

    def counts(self) -> dict:
        """status -> number of points (every status present, 0 where none)."""
        with self._errors("read"):
            got = dict(self.db.execute("SELECT status, COUNT(*) FROM points GROUP BY status").fetchall())
        return {s: got.get(s, 0) for s in STATUSES}

    # --- runs ---------------------------------------------------------------------------
    def begin_run(self, spec, todo: int) -> int:
        from .. import __version__

        with self._errors("write to"):
            cur = self.db.execute(
                "INSERT INTO runs (spec, spec_text, state, started_at, todo, host, version) VALUES (?, ?, 'running', ?, ?, ?, ?)",
                (spec.name, spec.text, time.time(), todo, socket.gethostname(), __version__))
        return cur.lastrowid

    def run_ready(self, run_id: int, scheduler: str, threads: int) -> None:
        with self._errors("write to"):
            self.db.execute("UPDATE runs SET ready_at = ?, scheduler = ?, threads = ? WHERE id = ?",
                            (time.time(), scheduler, threads, run_id))

    def end_run(self, run_id: int, state: str, ok: int, failed: int) -> None:
        with self._errors("write to"):
            self.db.execute("UPDATE runs SET state = ?, finished_at = ?, ok = ?, failed = ? WHERE id = ?",
                            (state, time.time(), ok, failed, run_id))

    def runs(self) -> list[dict]:
        with self._errors("read"):
            return [dict(r) for r in self.db.execute("SELECT * FROM runs ORDER BY id")]
