"""The `bptt` command: one sub-command per module in bptt.commands.

Each command module defines HELP (one line), add_arguments(parser) and run(args) -> exit code,
and imports anything heavy inside run(), so `bptt --help` stays fast.
"""
from __future__ import annotations

import argparse
import importlib
import sys

COMMANDS = {
    "demo": "bptt.commands.demo",
    "check": "bptt.commands.check",
    "train": "bptt.commands.train",
    "sample": "bptt.commands.sample",
    "evaluate": "bptt.commands.evaluate",
    "sweep": "bptt.commands.sweep",
    "flow": "bptt.commands.flow",
    "report": "bptt.commands.report",
    "approx": "bptt.commands.approx",
    "explore": "bptt.commands.explore",
    "diagnose": "bptt.commands.diagnose",
}


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Every option's help ends with its default: "(default: X)" where the help does not already say
    it ("(default: none)" for an option that is unset unless given); epilogs keep their layout."""

    def _get_help_string(self, action):
        text = action.help or ""
        if (not action.option_strings or action.required or action.default is argparse.SUPPRESS
                or "default" in text.lower()
                or "required" in text.lower() or isinstance(action, (argparse._StoreTrueAction,
                                                                      argparse._StoreFalseAction))):
            return text
        return text + (" (default: none)" if action.default is None else " (default: %(default)s)")


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(
        prog="bptt", description="Exact backpropagation through time for recurrent networks, term by term, verified.")
    parser.add_argument("--version", action="version", version=f"bptt {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module in COMMANDS.items():
        mod = importlib.import_module(module)
        p = sub.add_parser(name, help=mod.HELP, description=mod.HELP, formatter_class=HelpFormatter)
        mod.add_arguments(p)
        p.set_defaults(_run=mod.run)
    return parser


def _tolerant_streams() -> None:
    """Text the terminal's encoding cannot show (an ASCII locale, a non-ASCII spec name) is printed as
    escapes instead of failing with UnicodeEncodeError."""
    for stream in (sys.stdout, sys.stderr):
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")


def _quiet_stdout():
    """Point stdout at /dev/null, so that the flush at exit does not meet the closed pipe again."""
    import os

    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def main(argv=None) -> int:
    """The bptt command: argv None reads sys.argv and, as the command line's entry, ends the process
    at once after a heavy framework's import (bptt.progress.leave); a list runs in-process and returns."""
    code = _main(argv)
    if argv is None:
        from .progress import leave

        return leave(code)
    return code


def _main(argv) -> int:
    _tolerant_streams()
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        return int(args._run(args) or 0)
    except (ValueError, TypeError) as e:  # bad input: a sentence, not a traceback
        print(f"bptt {args.command}: error: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # the reader went away (bptt flow --json | head): end quietly, as a Unix tool does
        _quiet_stdout()
        return 141  # 128 + SIGPIPE
    except OSError as e:  # a file or folder that cannot be read or written: its name and why
        where = f" {e.filename}" if e.filename else ""
        print(f"bptt {args.command}: error: cannot use{where}: {e.strerror or e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"bptt {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
