"""Untrusted files, specs and stores (docs/security.md): nothing written outside its folder, no
internal kind reachable from a spec, no terminal escape printed raw, no read that blocks or has no
bound, no rewrite that a kill can leave half done, no two writers in one run folder."""
import fcntl
import io
import json
import os
import sqlite3
import subprocess
import sys
import zipfile

import numpy as np
import pytest

from bptt.cli import main
from bptt.sweep import Store, parse_spec
from bptt.sweep.spec import Spec
from bptt.train import read_toml
from conftest import cli, sentence

RUN = ["--task", "temporal", "--length", "12", "--hidden", "4", "--batch", "2", "--eval-every", "2",
       "--checkpoint-every", "2", "--quiet"]


def flow_points(text='kind = "flow"\n[fixed]\nhidden = 4\nlength = 8\nlong_lag = 4\n'):
    return parse_spec(text).points()


def store_with(folder, spec_name, metrics=None):
    """A sweep folder whose store holds one finished flow point recorded under spec_name."""
    folder.mkdir(parents=True, exist_ok=True)
    pts = flow_points()
    with Store(folder / "results.sqlite") as st:
        st.add_points(spec_name, pts)
        st.record(pts[0].key, {"status": "ok", "metrics": metrics or {"decay_rate": 0.9, "beyond_share": 0.1}})
    return folder


# --- names from specs and stores -----------------------------------------------------------------
@pytest.mark.parametrize("name", ["../../x/TRAVERSED", "/tmp/x/TRAVERSED", "a\\b", "..", ".hidden", "a\nb",
                                  "a\x1b[2Jb", "x" * 101])
def test_a_spec_name_that_is_not_one_safe_file_name_is_refused(name):
    sentence(ValueError, lambda: parse_spec(f'name = {json.dumps(name)}\nkind = "flow"\n'), "name")


@pytest.mark.parametrize("name", ["../../../../outside/TRAVERSED", "/ABSOLUTE/TRAVERSED"])
def test_sweep_plot_never_writes_outside_its_folder_whatever_name_the_store_holds(tmp_path, capsys, name):
    name = name.replace("/ABSOLUTE", str(tmp_path / "abs"))
    folder = store_with(tmp_path / "a" / "b" / "sweep", name)
    cli(["sweep", "plot", folder], capsys, "path separators")
    written = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file())
    assert all(str(p).startswith(os.path.join("a", "b", "sweep")) for p in written), written
    assert not (tmp_path / "outside").exists() and not (tmp_path / "abs").exists()


# --- the internal kind ------------------------------------------------------------------------------
def test_a_spec_file_cannot_reach_the_internal_selftest_kind(tmp_path, capsys):
    marker = tmp_path / "created"
    spec = tmp_path / "s.toml"
    spec.write_text(f'kind = "selftest"\n[fixed]\nmode = "exit_once"\nmarker = "{marker}"\nseconds = 1e12\n')
    cli(["sweep", spec, "--out", tmp_path / "out"], capsys, "kind", "'flow'")
    assert not marker.exists() and not (tmp_path / "out").exists()
    sentence(ValueError, lambda: Spec(name="s", kind="selftest", seeds=1, fixed={}, grid={}, random={}), "kind")


# --- Spec built directly -----------------------------------------------------------------------------
@pytest.mark.parametrize("seeds, words", [("abc", ["seeds", "'abc'"]), ([0, -1], ["seeds"]), ([2**63], ["2**63"]),
                                          (0, ["seeds"]), ([1.5], ["seeds"])])
def test_a_spec_built_directly_is_validated_like_a_parsed_one(seeds, words):
    sentence(ValueError, lambda: Spec(name="s", kind="flow", seeds=seeds, fixed={}, grid={}, random={}), *words)
    sentence(ValueError, lambda: Spec(name="s", kind="flow", seeds=1, fixed={"hidden": "big"}, grid={}, random={}),
             "hidden")
    assert Spec(name="s", kind="flow", seeds=[3, 1], fixed={}, grid={"hidden": [4, 8]}, random={}).seeds == (3, 1)


def test_spec_seeds_beyond_sqlite_integers_are_refused_at_parsing():
    sentence(ValueError, lambda: parse_spec(f'kind = "flow"\nseeds = [{2**63}]\n'), "seeds", "2**63")
    assert parse_spec(f'kind = "flow"\nseeds = [{2**63 - 1}]\n').seeds == (2**63 - 1,)


# --- terminal output -----------------------------------------------------------------------------------
def test_sweep_status_prints_names_and_errors_from_the_store_escaped(tmp_path, capsys):
    pts = flow_points()
    with Store(tmp_path / "results.sqlite") as st:
        st.add_points("evil\x1b[2J\nforged line", pts)
        st.record(pts[0].key, {"status": "failed", "error": "boom\x1b]0;title\x07\nok: 1 points", "seconds": 1.0})
        st.begin_run(Spec(name="x", kind="flow", seeds=1, fixed={}, grid={}, random={}), 1)
        st.db.execute("UPDATE runs SET spec = ?", ("run\x1b[31m\nname",))
    capsys.readouterr()
    assert main(["sweep", "status", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\x07" not in out
    assert "\\x1b[31m\\nname" in out and "boom\\x1b]0;title\\x07\\nok: 1 points" in out
    assert not any(line.startswith(("ok: 1", "name", "forged")) for line in out.splitlines())


def test_sweep_status_under_an_ascii_locale_prints_a_non_ascii_name(tmp_path):
    store_with(tmp_path, "x")
    with sqlite3.connect(tmp_path / "results.sqlite") as db:
        db.execute("UPDATE points SET spec = ?", ("café–λ",))
        db.execute("INSERT INTO runs (spec, spec_text, state, started_at, todo) VALUES ('phase–λ', '', 'done', 0, 1)")
    env = {**os.environ, "LC_ALL": "C", "LANG": "C", "PYTHONIOENCODING": "ascii"}
    r = subprocess.run([sys.executable, "-m", "bptt.cli", "sweep", "status", str(tmp_path)], env=env,
                       capture_output=True, timeout=120)
    assert r.returncode == 0, r.stderr.decode()
    assert b"phase\\u2013\\u03bb" in r.stdout


def test_reading_a_sweep_never_writes_its_store(tmp_path):
    store_with(tmp_path, "x")
    with Store.open(tmp_path) as st:
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            st.db.execute("CREATE TABLE other (a)")
        assert st.counts()["ok"] == 1


# --- paths: regular files only, bounded, no descriptors ------------------------------------------------
@pytest.mark.parametrize("fd", [0, 3, True])
def test_read_toml_takes_paths_only(fd):
    sentence(TypeError, lambda: read_toml(fd), "path", "str or os.PathLike")
    os.fstat(0)  # fd 0 is still open


def fifo(path):
    os.mkfifo(path)
    return path


def run_cli(args, cwd, timeout=120):
    """bptt args in a subprocess, killed if it hangs: (exit code, stderr)."""
    r = subprocess.run([sys.executable, "-m", "bptt.cli", *map(str, args)], cwd=cwd, capture_output=True,
                       text=True, timeout=timeout, env={**os.environ, "OPENBLAS_NUM_THREADS": "1"})
    return r.returncode, r.stderr


def test_a_fifo_given_as_a_config_a_text_or_a_spec_is_refused_at_once(tmp_path):
    pipe = fifo(tmp_path / "pipe")
    for args in (["train", "--config", pipe, "--out", tmp_path / "r"],
                 ["train", "--task", "char", "--text", pipe, "--out", tmp_path / "r"],
                 ["sweep", pipe, "--out", tmp_path / "s"]):
        code, err = run_cli(args, tmp_path)
        assert code == 2 and "named pipe (FIFO), not a regular file" in err.splitlines()[-1], err


@pytest.mark.parametrize("name", ["config.json", "metrics.jsonl", "vocab.json"])
def test_a_fifo_or_dev_zero_in_a_run_folder_is_refused_at_once(tmp_path, name):
    run = tmp_path / "run"
    assert main(["train", "--task", "reber", "--hidden", "4", "--batch", "2", "--steps", "2", "--eval-every", "2",
                 "--quiet", "--out", str(run)]) == 0
    for make in (fifo, lambda p: p.symlink_to("/dev/zero")):
        (run / name).unlink()
        make(run / name)
        verb = {"config.json": ["evaluate", run], "metrics.jsonl": ["train", "--task", "reber", "--hidden", "4",
                                                                    "--batch", "2", "--steps", "2", "--eval-every",
                                                                    "2", "--quiet", "--out", run, "--resume"],
                "vocab.json": ["sample", run]}[name]
        code, err = run_cli(verb, tmp_path)
        assert code == 2 and "Traceback" not in err, err
        assert ("not a regular file" in err or f"has no {name}" in err), err


def test_the_memoryless_baseline_of_a_large_vocabulary_allocates_no_v_by_v_table():
    from bptt.tasks import conditional_entropy

    V = 1_000_000  # a V x V table would be 8 TB
    ids = np.array([0, 1, 0, 2, 0, 1] * 10 + [V - 1])
    pairs = list(zip(ids[:-1], ids[1:]))
    counts = {p: pairs.count(p) for p in set(pairs)}
    rows = {a: sum(c for (x, _), c in counts.items() if x == a) for a, _ in counts}
    want = -sum(c * np.log(c / rows[a]) for (a, _), c in counts.items()) / len(pairs)
    assert conditional_entropy(ids, V) == pytest.approx(want, rel=1e-12)


def test_a_char_text_whose_model_passes_the_element_limit_is_refused_first(tmp_path, capsys, monkeypatch):
    text = "".join(chr(0x4E00 + i) for i in range(20_000)) * 2
    (tmp_path / "t.txt").write_text(text, encoding="utf-8")
    monkeypatch.setenv("BPTT_MAX_ELEMENTS", "1000000")
    cli(["train", "--task", "char", "--text", tmp_path / "t.txt", "--out", tmp_path / "r", "--steps", "1"],
        capsys, "BPTT_MAX_ELEMENTS")


# --- JSON nesting, .npy headers ---------------------------------------------------------------------
def test_deeply_nested_json_in_run_files_is_a_sentence(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", *RUN, "--steps", "2", "--out", str(run)]) == 0
    (run / "config.json").write_text("[" * 100_000 + "]" * 100_000)
    cli(["evaluate", run], capsys, "nests brackets", "deep")
    (run / "metrics.jsonl").write_text('{"step": 1, "x": ' + "[" * 3000 + "]" * 3000 + "}\n{}\n")
    cli(["train", *RUN, "--steps", "2", "--out", run, "--resume"], capsys, "line 1 is not a metrics record")


def test_deeply_nested_meta_in_a_model_or_checkpoint_is_a_sentence(tmp_path):
    from bptt import Model, random_rnn
    from bptt.train import checkpoint

    deep = "[" * 100_000 + "]" * 100_000
    m = random_rnn(3, 2, 2, seed=0)
    np.savez(tmp_path / "m.npz", meta=np.array(deep), **m.params)
    sentence(ValueError, lambda: Model.load(tmp_path / "m.npz"), "nests brackets")
    checkpoint.save(tmp_path / "c.npz", m, {}, {"step": 0})
    with np.load(tmp_path / "c.npz") as f:
        arrays = {k: f[k] for k in f.files if k != "meta"}
    np.savez(tmp_path / "c.npz", meta=np.array(deep), **arrays)
    sentence(ValueError, lambda: checkpoint.load(tmp_path / "c.npz"), "nests brackets")


def test_a_garbage_npy_header_in_a_model_file_is_a_sentence(tmp_path):
    from bptt import Model, random_rnn

    m = random_rnn(3, 2, 2, seed=0)
    m.save(tmp_path / "m.npz")
    with np.load(tmp_path / "m.npz") as f:
        arrays = {k: f[k] for k in f.files}
    buf = io.BytesIO()
    np.save(buf, arrays["U"])
    head = buf.getvalue()
    bad = head.replace(b"'descr'", b"'''des", 1)  # an unterminated string: tokenize fails on it
    with zipfile.ZipFile(tmp_path / "g.npz", "w") as z:
        for k, a in arrays.items():
            b = io.BytesIO()
            np.save(b, a)
            z.writestr(f"{k}.npy", bad if k == "U" else b.getvalue())
    sentence(ValueError, lambda: Model.load(tmp_path / "g.npz"), "damaged")


# --- durability: atomic rewrites, one writer per run folder, stale temporaries ---------------------------
def test_a_resume_whose_rewrite_of_the_history_fails_midway_leaves_the_run_resumable(tmp_path):
    run = tmp_path / "run"
    assert main(["train", *RUN, "--steps", "6", "--checkpoint-every", "4", "--out", str(run)]) == 0
    ck = run / "checkpoint.npz"
    assert json.loads((run / "checkpoint.json").read_text())["step"] == 6
    history = (run / "metrics.jsonl").read_bytes()
    # a full disk (a file size limit) stops the resume while it rewrites metrics.jsonl: the first file it writes
    limited = (f"import resource, runpy, signal, sys; signal.signal(signal.SIGXFSZ, signal.SIG_IGN); "
               f"resource.setrlimit(resource.RLIMIT_FSIZE, ({len(history) // 2}, {len(history) // 2})); "
               f"sys.argv = ['bptt'] + sys.argv[1:]; runpy.run_module('bptt.cli', run_name='__main__')")
    r = subprocess.run([sys.executable, "-c", limited, "train", *RUN, "--steps", "6", "--checkpoint-every", "4",
                        "--out", str(run), "--resume"], capture_output=True, text=True, timeout=120)
    assert r.returncode != 0
    assert (run / "metrics.jsonl").read_bytes() == history and ck.exists()
    assert main(["train", *RUN, "--steps", "6", "--checkpoint-every", "4", "--out", str(run), "--resume"]) == 0
    assert (run / "metrics.jsonl").read_bytes() == history


def test_two_trainings_in_one_folder_at_once_the_second_is_refused(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    with open(run / ".lock", "ab") as f:  # what a running `bptt train --out run` holds
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        cli(["train", *RUN, "--steps", "2", "--out", run], capsys, "is writing to", ".lock")
    assert not (run / "metrics.jsonl").exists()
    assert main(["train", *RUN, "--steps", "2", "--out", str(run)]) == 0


def test_a_train_and_a_sweep_share_the_folder_lock(tmp_path, capsys):
    from bptt.files import folder_lock

    with folder_lock(tmp_path):
        cli(["train", *RUN, "--steps", "2", "--out", tmp_path], capsys, "another `bptt train` or `bptt sweep`")


def test_temporaries_of_killed_processes_are_removed_on_the_next_start(tmp_path):
    run = tmp_path / "run"
    assert main(["train", *RUN, "--steps", "2", "--out", str(run)]) == 0
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = [run / f".checkpoint.npz.tmp{dead.pid}", run / f".metrics.jsonl.tmp{dead.pid}"]
    for p in stale:
        p.write_bytes(b"half a file")
    alive = run / f".checkpoint.npz.tmp{os.getppid()}"  # a live process's: left alone
    alive.write_bytes(b"being written")
    assert main(["train", *RUN, "--steps", "4", "--out", str(run), "--resume"]) == 0  # extends the run
    assert not any(p.exists() for p in stale) and alive.exists()


def test_a_full_disk_under_a_sweep_store_is_one_line(tmp_path):
    pts = flow_points('kind = "flow"\n[fixed]\nhidden = 4\nlength = 8\nlong_lag = 4\n[grid]\nradius = [0.5, 1.0]\n')
    with Store(tmp_path / "results.sqlite") as st:
        st.add_points("s", pts)
        pages = st.db.execute("PRAGMA page_count").fetchone()[0]
        st.db.execute(f"PRAGMA max_page_count = {pages}")  # the disk is full from here on
        sentence(ValueError, lambda: st.record(pts[0].key, {"status": "failed", "error": "x" * 100_000}),
                 "cannot write to the sweep store", "full")


# --- resume: a checkpoint that does not fit the run is refused -----------------------------------------
def _rewrite_checkpoint(run, change_meta=None, drop=()):
    ck = run / "checkpoint.npz"
    with np.load(ck) as f:
        arrays = {k: f[k] for k in f.files if k not in drop}
    meta = json.loads(str(arrays.pop("meta")))
    if change_meta:
        change_meta(meta)
    np.savez(ck, meta=np.array(json.dumps(meta)), **arrays)


STREAM = ["--task", "reber", "--hidden", "4", "--batch", "2", "--chunk", "5", "--eval-every", "2",
          "--checkpoint-every", "2", "--quiet", "--steps", "2"]


@pytest.mark.parametrize("case, change, drop, words", [
    ("activation", lambda m: m.update(activation="relu"), (), ["activation", "relu", "tanh"]),
    ("no-carried-state", None, ("extra/h",), ["carried state is missing"]),
    ("position-past-the-end", lambda m: m["stream"].update(p=10**9), (), ["stream position", "1000000000"]),
    ("position-off-the-blocks", lambda m: m["stream"].update(p=7), (), ["stream position"]),
    ("rng-out-of-range", lambda m: m["rng"]["state"].update(state=2**200), (), ["rng"]),
])
def test_resume_refuses_a_checkpoint_that_does_not_fit_the_run(tmp_path, capsys, case, change, drop, words):
    run = tmp_path / "run"
    assert main(["train", *STREAM, "--out", str(run)]) == 0
    _rewrite_checkpoint(run, change, drop)
    cli(["train", *STREAM, "--out", run, "--resume"], capsys, *words)


def test_resume_refuses_a_nan_optimiser_state(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", *STREAM, "--optimizer", "adam", "--lr", "0.01", "--out", str(run)]) == 0
    ck = run / "checkpoint.npz"
    with np.load(ck) as f:
        arrays = {k: f[k] for k in f.files}
    name = next(k for k in arrays if k.startswith("opt/") and arrays[k].dtype.kind == "f")
    arrays[name] = np.full_like(arrays[name], np.nan)
    np.savez(ck, **arrays)
    cli(["train", *STREAM, "--optimizer", "adam", "--lr", "0.01", "--out", run, "--resume"], capsys, "NaN or inf")
