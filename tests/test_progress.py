"""Long work says what it does: each stage as it starts, and a heartbeat while it lasts."""
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
