"""Reading a sweep folder: a pandas DataFrame of its points, and the text of `bptt sweep status`."""
from __future__ import annotations

import json
import time

from ..files import printable
from ..validate import show
from .store import STATUSES, Store, store_path

BASE_COLUMNS = ("key", "spec", "kind", "status", "seed")
TAIL_COLUMNS = ("error", "traceback", "attempts", "started_at", "finished_at", "seconds", "worker", "blas_threads", "version")


def results(out, *, status=None):
    """The points of the sweep in `out` as a pandas DataFrame, one row per point.

    Columns: key, spec, kind, status, seed, one column per parameter, one per metric (named
    "metric_NAME" only where a metric's name is already taken), then error, traceback, attempts,
    started_at / finished_at (UTC timestamps), seconds, worker, blas_threads, version.
    status: keep only the points with this status ("ok", "failed" or "pending").
    df.attrs["params"] and df.attrs["metrics"] list the parameter and metric columns.
    """
    import pandas as pd

    if status is not None and (not isinstance(status, str) or status not in STATUSES):
        raise ValueError(f"status must be None or one of {', '.join(STATUSES)}, got {show(status)}")
    with Store.open(out) as store:
        rows = store.rows(status)
    params = _names(r["params"] for r in rows)
    metrics = _names(r["metrics"] or {} for r in rows)
    taken = set(BASE_COLUMNS) | set(TAIL_COLUMNS) | set(params)
    mcol = {m: f"metric_{m}" if m in taken else m for m in metrics}
    table = []
    for r in rows:
        d = {c: r[c] for c in BASE_COLUMNS}
        d.update({p: r["params"].get(p) for p in params})
        d.update({mcol[m]: (r["metrics"] or {}).get(m) for m in metrics})
        d.update({c: r[c] for c in TAIL_COLUMNS})
        table.append(d)
    columns = list(BASE_COLUMNS) + params + [mcol[m] for m in metrics] + list(TAIL_COLUMNS)
    df = pd.DataFrame(table, columns=columns)
    df.attrs["params"], df.attrs["metrics"] = params, [mcol[m] for m in metrics]
    for c in ("started_at", "finished_at"):
        df[c] = pd.to_datetime(df[c], unit="s", utc=True)
    for m in metrics:  # None (a non-finite value or a missing metric) becomes NaN in numeric columns
        col = df[mcol[m]]
        if col.map(lambda v: v is None or (isinstance(v, (int, float)) and not isinstance(v, bool))).all():
            df[mcol[m]] = pd.to_numeric(col, errors="coerce")
    return df


def _names(dicts) -> list:
    out = {}
    for d in dicts:
        out.update(dict.fromkeys(d))
    return list(out)


def _when(t):
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(t)) if t is not None else "?"


def _params(p: dict, seed, varying=None) -> str:
    return " ".join(f"{k}={v}" for k, v in p.items() if varying is None or k in varying) + f" seed={seed}"


def status_summary(out, *, slowest=5, failures=10) -> dict:
    """Counts by status, the runs, the slowest points and the failures, as plain data (for --json)."""
    with Store.open(out) as store:
        counts = store.counts()
        runs = store.runs()
        rows = store.rows()
    done = [r for r in rows if r["seconds"] is not None]
    done.sort(key=lambda r: -r["seconds"])
    failed = [r for r in rows if r["status"] == "failed"]
    pick = ("key", "spec", "params", "seed", "seconds", "worker")
    return {
        "store": str(store_path(out)),
        "points": len(rows),
        "counts": counts,
        "runs": [{k: r[k] for k in r if k != "spec_text"} for r in runs],
        "slowest": [{k: r[k] for k in pick} for r in done[:slowest]],
        "failures": [{k: r[k] for k in (*pick, "error", "attempts")} for r in failed[:failures]],
        "failed_total": len(failed),
        "varying": sorted(k for k in {k for r in rows for k in r["params"]}
                          if len({json.dumps(r["params"].get(k)) for r in rows}) > 1),
    }


def status_text(out, *, slowest=5, failures=10) -> str:
    """The report of `bptt sweep status DIR`: counts, runs, slowest points, failures; every character
    that is not printable (a terminal escape, a newline inside a name) is shown as its escape."""
    s = status_summary(out, slowest=slowest, failures=failures)
    c = s["counts"]
    lines = [f"{s['store']}: {s['points']} points: {c['ok']} ok, {c['failed']} failed, {c['pending']} pending", ""]
    if s["varying"]:
        lines.append(f"(points listed by the parameters that vary: {', '.join(s['varying'])})")
    lines.append("runs:")
    for r in s["runs"]:
        end = r["finished_at"]
        took = f"{end - r['started_at']:.1f} s" if end else "no end recorded (driver killed?)"
        ready = f", cluster ready after {r['ready_at'] - r['started_at']:.1f} s" if r["ready_at"] else ""
        where = f" on {r['scheduler']} ({r['threads']} threads)" if r["scheduler"] else ""
        lines.append(f"  #{r['id']} {_when(r['started_at'])} {r['spec']}{where}: {r['todo']} to do, "
                     f"{r['ok']} ok, {r['failed']} failed; {r['state']}, {took}{ready}")
    if s["slowest"]:
        lines += ["", "slowest points:"]
        for r in s["slowest"]:
            lines.append(f"  {r['seconds']:9.3f} s  {r['key']}  {_params(r['params'], r['seed'], s['varying'])}")
    if s["failures"]:
        shown = len(s["failures"])
        note = f", first {shown} shown" if s["failed_total"] > shown else ""
        lines += ["", f"failures ({s['failed_total']}{note}):"]
        for r in s["failures"]:
            lines.append(f"  {r['key']}  {_params(r['params'], r['seed'], s['varying'])}")
            lines.append(f"      {r['error']}")
        lines.append("  (tracebacks: the `traceback` column of results(), or the points table of the store)")
    return "\n".join(printable(line) for line in lines)  # a name or error from the store cannot forge lines
