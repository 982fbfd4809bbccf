"""Sweeps on a real Dask cluster (two worker processes on loopback): end to end, a point that raises,
worker processes that die, and a driver killed with SIGKILL in the middle of a sweep."""
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from conftest import need

from bptt.cli import main
from bptt.sweep import Store, parse_spec
from bptt.sweep.points import run_point
from bptt.sweep.spec import internal_spec

FLOW = """
name = "small"
kind = "flow"
seeds = 2
[fixed]
hidden = 8
long_lag = 8
[grid]
radius = [0.6, 1.4]
length = [20, 40]
activation = ["tanh", "relu"]
"""

# heavy enough (about 0.3 s a point here) that the driver can be killed half-way
SLOW = """
name = "slow"
kind = "flow"
seeds = 4
[fixed]
hidden = 32
length = 600
long_lag = 50
[grid]
radius = [0.8, 1.0, 1.2, 1.4]
"""


@pytest.fixture(scope="module")
def cluster():
    need("distributed")
    need("pandas")
    from bptt.sweep import local_cluster

    c = local_cluster(2)
    yield c
    c.close()


def write(tmp_path, text, name="spec.toml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def test_a_small_sweep_end_to_end_through_the_command(cluster, tmp_path, capsys):
    spec = write(tmp_path, FLOW)
    out = tmp_path / "out"
    argv = ["sweep", str(spec), "--out", str(out), "--scheduler", cluster.scheduler_address, "--quiet"]
    assert main(argv) == 0
    assert "16 points: 0 already done, 16 ok, 0 failed" in capsys.readouterr().out
    with Store.open(out) as st:
        rows = st.rows()
        runs = st.runs()
    points = parse_spec(spec.read_text()).points()
    assert sorted(r["key"] for r in rows) == sorted(p.key for p in points)
    for r, p in zip(sorted(rows, key=lambda r: r["key"]), sorted(points, key=lambda p: p.key)):
        assert r["status"] == "ok" and r["blas_threads"] == 1 and r["params"]["dtype"] == "float32"
        assert r["metrics"] == run_point(p.config)["metrics"]  # the same numbers as here, in float32
        assert r["worker"] and r["seconds"] > 0 and r["finished_at"] >= r["started_at"]
    assert runs[0]["state"] == "done" and runs[0]["threads"] == 2 and runs[0]["ok"] == 16

    # the same spec again: nothing to do, nothing rewritten
    assert main(argv) == 0
    assert "16 points: 16 already done, 0 ok, 0 failed" in capsys.readouterr().out
    with Store.open(out) as st:
        assert [r["attempts"] for r in st.rows()] == [1] * 16 and len(st.runs()) == 2

    assert main(["sweep", "status", str(out)]) == 0
    text = capsys.readouterr().out
    assert "16 points: 16 ok, 0 failed, 0 pending" in text and "slowest points" in text
    need("matplotlib")
    assert main(["sweep", "plot", str(out)]) == 0
    png = out / "plots" / "small.png"  # named after the spec
    assert capsys.readouterr().out.strip() == str(png) and png.read_bytes()[:4] == b"\x89PNG"


CELLS_TRAIN = """
name = "cells-train"
kind = "train"
seeds = 2
[fixed]
task = "temporal"
length = 10
hidden = 4
batch = 3
steps = 4
eval_every = 2
method = "clip"
forget_bias = 0.5
[grid]
cell = ["elman", "lstm", "gru"]
"""

CELLS_FLOW = """
name = "cells-flow"
kind = "flow"
[fixed]
hidden = 5
length = 30
long_lag = 6
[grid]
cell = ["elman", "lstm", "gru"]
radius = [0.8, 1.2]
"""


@pytest.mark.parametrize("text", [CELLS_TRAIN, CELLS_FLOW], ids=["train", "flow"])
def test_a_spec_over_cells_runs_and_stores_each_cells_results(cluster, tmp_path, text):
    from bptt.sweep import results, run_sweep

    spec = parse_spec(textwrap.dedent(text))
    s = run_sweep(spec, tmp_path / "out", scheduler=cluster.scheduler_address)
    points = spec.points()
    assert s.ok == len(points) == s.total and s.failed_total == 0
    df = results(tmp_path / "out")
    cells = df.groupby("cell").size().to_dict()
    if spec.kind == "train":  # two seeds each
        assert cells == {"rnn": 2, "lstm": 2, "gru": 2}
        assert set(df[df.cell == "lstm"]["forget_bias"]) == {0.5} and set(df[df.cell == "gru"]["forget_bias"]) == {1.0}
    else:  # the radius is the Elman cell's: one point for each gated cell
        assert cells == {"rnn": 2, "lstm": 1, "gru": 1}
    assert df[df.cell != "rnn"]["rho"].isna().all() and df[df.cell == "rnn"]["rho"].notna().all()
    with Store.open(tmp_path / "out") as st:
        rows = {r["key"]: r for r in st.rows()}
    skip = {"train_seconds"}
    for p in points:  # each stored row holds the numbers its own cell gives here
        here = run_point(p.config)["metrics"]
        assert {k: v for k, v in rows[p.key]["metrics"].items() if k not in skip} == \
               {k: v for k, v in here.items() if k not in skip}, p.params["cell"]


def test_raising_points_and_dying_workers_are_recorded_and_the_sweep_goes_on(cluster, tmp_path):
    import pandas as pd

    from bptt.sweep import results, run_sweep

    marker = tmp_path / "died-once"
    spec = internal_spec(textwrap.dedent(f"""
        kind = "selftest"
        [fixed]
        marker = "{marker}"
        seconds = 0.2
        [grid]
        mode = ["ok", "raise", "exit", "exit_once"]
        value = [1.0, 2.0]
        """))
    s = run_sweep(spec, tmp_path / "out", scheduler=cluster.scheduler_address)
    assert (s.total, s.ok, s.failed, s.lost, s.pending) == (8, 4, 4, 0, 0)
    df = results(tmp_path / "out").set_index(["mode", "value"])
    for v in (1.0, 2.0):
        ok = df.loc[("ok", v)]
        assert ok["status"] == "ok" and ok["metric_value"] == 2 * v and pd.isna(ok["error"])
        raised = df.loc[("raise", v)]
        assert raised["status"] == "failed"
        assert raised["error"] == f"RuntimeError: selftest point raised on purpose (value {v})"
        assert "run_selftest" in raised["traceback"]
        killer = df.loc[("exit", v)]  # killed its worker twice: Dask gave up on it
        assert killer["status"] == "failed" and killer["error"].startswith("KilledWorker")
        survivor = df.loc[("exit_once", v)]  # killed one worker, was retried and finished on another
        assert survivor["status"] == "ok" and survivor["metric_value"] == 2 * v
    assert marker.exists() and int(marker.read_text()) not in set(df.loc["exit_once"]["pid"])
    with Store.open(tmp_path / "out") as st:
        tb = {r["params"]["mode"]: r["traceback"] for r in st.rows(status="failed")}
    assert "raised on purpose" in tb["raise"] and "KilledWorker" in tb["exit"]


def _ok_count(db):
    try:
        con = sqlite3.connect(db, timeout=5)
        try:
            return con.execute("SELECT COUNT(*) FROM points WHERE status = 'ok'").fetchone()[0]
        finally:
            con.close()
    except sqlite3.OperationalError:  # not created yet
        return 0


def test_a_driver_killed_mid_sweep_loses_nothing_and_the_rerun_completes_it(cluster, tmp_path):
    psutil = need("psutil")
    from bptt.sweep import run_sweep

    spec = write(tmp_path, SLOW)
    out = tmp_path / "killed"
    cmd = [sys.executable, "-m", "bptt.cli", "sweep", str(spec), "--out", str(out), "--workers", "2", "--quiet"]
    env = {k: v for k, v in os.environ.items() if k != "DASK_SCHEDULER_ADDRESS"}
    driver = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    db = out / "results.sqlite"
    deadline = time.monotonic() + 120
    while _ok_count(db) < 3:
        assert driver.poll() is None, driver.communicate()
        assert time.monotonic() < deadline, "the sweep made no progress"
        time.sleep(0.05)
    children = psutil.Process(driver.pid).children(recursive=True)
    os.kill(driver.pid, signal.SIGKILL)
    driver.wait()
    done_before = _ok_count(db)
    assert 3 <= done_before < 16, "the driver was not killed mid-sweep"
    gone, alive = psutil.wait_procs(children, timeout=30)  # its worker processes exit with it
    assert not alive, alive

    with Store.open(out) as st:
        before = {r["key"]: r for r in st.rows(status="ok")}
        assert st.runs()[0]["state"] == "running" and st.runs()[0]["finished_at"] is None
    rerun = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert f"16 points: {done_before} already done, {16 - done_before} ok, 0 failed" in rerun.stdout

    reference = run_sweep(parse_spec(spec.read_text()), tmp_path / "reference", scheduler=cluster.scheduler_address)
    assert reference.ok == 16
    with Store.open(out) as st, Store.open(tmp_path / "reference") as ref:
        rows, want = st.rows(), {r["key"]: r for r in ref.rows()}
    assert len(rows) == 16 and {r["key"] for r in rows} == set(want)
    for r in rows:
        assert r["status"] == "ok" and r["attempts"] == 1  # every point computed and stored exactly once
        assert r["metrics"] == want[r["key"]]["metrics"]
        if r["key"] in before:  # finished before the kill: kept as it was, not run again
            assert r["run_id"] == 1 and r["finished_at"] == before[r["key"]]["finished_at"]
        else:
            assert r["run_id"] == 2


def test_one_driver_per_folder(cluster, tmp_path):
    import fcntl

    from bptt.sweep import run_sweep

    out = tmp_path / "out"
    out.mkdir()
    with open(out / ".lock", "a+") as f:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)  # as a running driver holds it
        with pytest.raises(ValueError, match="another `bptt train` or `bptt sweep` is writing to"):
            run_sweep(parse_spec(FLOW), out, scheduler=cluster.scheduler_address)


def test_workers_and_scheduler_together_are_refused(tmp_path):
    need("distributed")
    from bptt.sweep import run_sweep

    with pytest.raises(ValueError, match="leave workers out"):
        run_sweep(parse_spec(FLOW), tmp_path, scheduler="tcp://127.0.0.1:1", workers=2)
    assert not Path(tmp_path / "results.sqlite").exists()


def test_dask_scheduler_address_from_the_environment_is_used(cluster, tmp_path, monkeypatch):
    from bptt.sweep import run_sweep

    monkeypatch.setenv("DASK_SCHEDULER_ADDRESS", cluster.scheduler_address)
    spec = parse_spec(FLOW.replace("seeds = 2", "seeds = 1").replace('activation = ["tanh", "relu"]', ""))
    s = run_sweep(spec, tmp_path / "out")
    assert (s.total, s.ok) == (4, 4)
    with Store.open(tmp_path / "out") as st:
        assert st.runs()[0]["scheduler"] == cluster.scheduler_address


def test_a_cluster_that_goes_away_leaves_the_unfinished_points_pending_for_the_rerun(cluster, tmp_path):
    import threading

    from bptt.sweep import local_cluster, run_sweep

    spec = internal_spec('kind = "selftest"\nseeds = 12\n[fixed]\nseconds = 0.5\n')
    doomed = local_cluster(2)
    out = tmp_path / "out"

    def close_after_two_results():
        deadline = time.monotonic() + 120
        while _ok_count(out / "results.sqlite") < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        doomed.close()

    threading.Thread(target=close_after_two_results, daemon=True).start()
    s = run_sweep(spec, out, scheduler=doomed.scheduler_address)
    assert s.ok >= 2 and s.lost > 0 and s.ok + s.lost == 12 and s.failed == 0 and s.pending == s.lost
    with Store.open(out) as st:
        assert st.runs()[0]["state"] == "incomplete"
    again = run_sweep(spec, out, scheduler=cluster.scheduler_address)
    assert (again.skipped, again.ok, again.pending) == (12 - s.lost, s.lost, 0)
