"""The docs test's watch for silence (tests/watchdog.py) can fail: a command silent for more than
GAP seconds fails the check that every docs block goes through, one that keeps printing passes."""
import sys

import pytest

from test_docs import run_watched
from watchdog import GAP, marked, watched


def python(code):
    return [sys.executable, "-c", code]


def test_a_command_silent_for_six_seconds_fails_the_check(tmp_path):
    assert GAP == 5.0
    with pytest.raises(AssertionError) as e:
        run_watched("sleep 6", tmp_path, "docs/page.md", "$ sleep 6", shell=True)
    message = str(e.value)
    assert message.startswith("docs/page.md: '$ sleep 6' printed nothing for ") and "from its start" in message
    assert 6.0 <= float(message.split("printed nothing for ")[1].split(" s")[0]) < 60


def test_a_command_that_prints_every_second_for_seven_seconds_passes(tmp_path):
    code = "import sys, time\nfor i in range(7):\n    print(i, file=sys.stderr, flush=True)\n    time.sleep(1)\n"
    got = run_watched(python(code), tmp_path, "docs/page.md", "for i in range(7):")
    assert got.stderr.split() == [str(i) for i in range(7)] and got.stdout == ""
    assert 1.0 <= got.gap <= GAP


def test_the_gap_is_the_longest_silence_and_names_the_line_before_it(tmp_path):
    # a pause after output and the silence at the end both count, as does the start
    code = ("import sys, time\nprint('one', flush=True)\ntime.sleep(0.2)\n"
            "print('two', file=sys.stderr, flush=True)\ntime.sleep(2.5)\nprint('three', flush=True)\n")
    got = watched(python(code), cwd=tmp_path)
    assert got.returncode == 0 and got.stdout.split() == ["one", "three"] and got.stderr.split() == ["two"]
    assert 2.5 <= got.gap and got.before == "two" and got.at >= 0.2
    silent_end = watched(python("print('x', flush=True)\nimport time\ntime.sleep(2.5)"), cwd=tmp_path)
    assert silent_end.gap >= 2.5 and silent_end.before == "x"


def test_a_failing_command_fails_with_its_output(tmp_path):
    with pytest.raises(AssertionError, match="exit 3"):
        run_watched(python("import sys; print('why', file=sys.stderr); sys.exit(3)"), tmp_path, "p.md", "x")


def test_a_blocks_leading_imports_and_its_teardown_sit_outside_the_marks_but_its_work_does_not(tmp_path):
    # watched from after `import time` to the block's last line: 2.5 s of sleep at import and 2.5 s
    # after the end mark are not counted; 2.5 s inside the block are
    slow_import = tmp_path / "slowmod.py"
    slow_import.write_text("import time\ntime.sleep(2.5)\n")
    code = marked("import sys\nsys.path.insert(0, '.')\nimport slowmod\nprint('x', flush=True)\n")
    assert code.index("WATCH_FD") < code.index("sys.path.insert")  # the block's work starts at its first non-import
    code = marked("import time\nimport slowmod\nprint('a', flush=True)\ntime.sleep(1.5)\nprint('b', flush=True)")
    got = watched(python(code + "time.sleep(2.5)\n"), cwd=tmp_path, marks=True, env={"PYTHONPATH": str(tmp_path)})
    assert got.returncode == 0 and got.stdout.split() == ["a", "b"]
    assert 1.5 <= got.gap < 2.5 and got.before == "a"
    inside = marked("import time\nprint('a', flush=True)\ntime.sleep(2.5)\nprint('b', flush=True)")
    assert watched(python(inside), cwd=tmp_path, marks=True).gap >= 2.5
