"""Long work says what it does: each stage as it starts, and a heartbeat while it lasts."""
import sys
import time

from bptt.cli import main
from bptt.progress import Stages


def test_a_stage_is_said_when_it_starts_and_again_while_it_lasts():
    lines = []
    with Stages("job", say=lines.append, every=0.3) as stage:
        stage("first")
        stage("second")
        time.sleep(1.0)
    assert lines[:2] == ["job: first...", "job: second..."]
    beats = lines[2:]
    assert 2 <= len(beats) <= 4 and all(b.startswith("job: second, ") and b.endswith(" s...") for b in beats)


def test_bptt_approx_says_each_method_on_stderr_and_lists_the_windows_up_to_T(capsys):
    assert main(["approx", "--length", "10", "--hidden", "4"]) == 0
    out, err = capsys.readouterr()
    assert "bptt approx: RTRL, O(S^2 P) a step..." in err.splitlines()
    listed = [line.split()[1] for line in out.splitlines() if line.startswith("window K=")]
    assert listed == ["K=0", "K=1", "K=2", "K=5", "K=10"]  # the default windows, 20 > T = 10 left out


def test_a_delayed_stage_says_nothing_when_quick_and_speaks_when_it_lasts():
    lines = []
    with Stages("lib", say=lines.append, delay=0.5, every=0.3) as stage:
        stage("quick")
    assert lines == []
    with Stages("lib", say=lines.append, delay=0.3, every=0.3) as stage:
        stage("slow")
        time.sleep(1.0)
    assert lines and all(line.startswith("lib: slow, ") for line in lines)


def test_a_delayed_stage_inside_another_leaves_the_talking_to_the_outer_one():
    outer, inner = [], []
    with Stages("outer", say=outer.append, every=0.3) as stage:
        stage("work")
        with Stages("inner", say=inner.append, delay=0.1, every=0.2) as nested:
            nested("import")
            time.sleep(0.8)
    assert inner == [] and len(outer) >= 2


def test_off_a_terminal_the_bar_is_plain_lines_on_stderr_with_its_count_and_its_end(capsys, monkeypatch):
    import types

    from bptt.progress import Lines, bar

    # a suite that runs notebooks has imported ipykernel: that alone is no notebook
    monkeypatch.setitem(sys.modules, "ipykernel", types.ModuleType("ipykernel"))
    b = bar(5, "job", "step", delay=0)
    assert isinstance(b, Lines)  # pytest's stderr is not a terminal
    for i in range(5):
        b.update()
        b.set_postfix({"loss": i}, refresh=False)
    b.close()
    b.close()  # twice is harmless
    err = capsys.readouterr().err.splitlines()
    assert err[0] == "job: 0/5 steps..." and err[-1].startswith("job: 5/5 steps, loss=4, ")
    quick = bar(5, "job", "step", quiet=True)  # quiet: no bar; lines only once the work lasts a second
    assert isinstance(quick, Lines)
    quick.update(5)
    quick.close()
    assert capsys.readouterr().err == ""


def test_leave_ends_at_once_after_a_heavy_import_yet_runs_atexit_and_flushes(tmp_path, monkeypatch):
    import subprocess
    import sys

    from bptt import progress

    monkeypatch.setattr(progress, "HEAVY", ("no_framework_of_that_name",))  # pytest may hold torch already
    assert progress.leave(3) == 3  # no heavy framework: the code comes back for sys.exit
    code = ("import atexit, sys\nimport bptt.progress as p\nsys.modules['torch'] = sys  # as if imported\n"
            "atexit.register(lambda: print('atexit ran'))\nprint('unflushed', end=' ')\np.leave(3)\n"
            "print('never')\n")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert run.returncode == 3 and run.stdout == "unflushed atexit ran\n", run
