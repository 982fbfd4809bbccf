"""The parameters of a point kind: type, default and allowed values (bptt.sweep.points defines the
kinds with them, bptt.sweep.spec checks a spec's values against them)."""
from __future__ import annotations

import math
from dataclasses import dataclass

from ..validate import show


@dataclass(frozen=True)
class Param:
    """One parameter of a point kind: its type, default and allowed values."""

    type: type                    # int, float, str or bool
    default: object
    help: str = ""
    choices: tuple | None = None  # allowed values (str parameters)
    low: float | None = None      # inclusive bounds (numbers)
    high: float | None = None
    above: float | None = None    # exclusive lower bound (numbers)

    def allowed(self) -> str:
        if self.choices is not None:
            return "one of " + ", ".join(repr(c) for c in self.choices)
        if self.type is bool:
            return "true or false"
        what = {int: "an integer", float: "a number", str: "a string"}[self.type]
        cond = []
        if self.above is not None:
            cond.append(f"> {self.above:g}")
        if self.low is not None:
            cond.append(f">= {self.low:g}")
        if self.high is not None:
            cond.append(f"<= {self.high:g}")
        return what + (" " + " and ".join(cond) if cond else "")

    def check(self, value, where: str):
        """The value in canonical form, or ValueError naming `where` and what is allowed."""
        bad = ValueError(f"{where}: expected {self.allowed()}, got {show(value)}")
        if self.type is bool:
            if not isinstance(value, bool):
                raise bad
            return value
        if self.type is str:
            if not isinstance(value, str) or (self.choices is not None and value not in self.choices):
                raise bad
            return value
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise bad
        if self.type is int:
            if isinstance(value, float):
                raise bad
            value = int(value)
        else:
            value = float(value)
            if not math.isfinite(value):
                raise bad
        if ((self.above is not None and not value > self.above) or (self.low is not None and value < self.low)
                or (self.high is not None and value > self.high)):
            raise bad
        return value
