"""Tasks with seeds, held-out sets, memoryless baselines and published success criteria.

make(name, ...) builds one: "adding" (variant "hochreiter" or "le"), "copy", "temporal", "reber"
(the embedded Reber grammar, the built-in corpus), "char" (a text file; the Reber corpus without one).
"""
from __future__ import annotations

from .base import Task
from .reber import Reber, reber_string
from .synthetic import Adding, Copy, TemporalOrder
from .text import CharLM, Vocab, conditional_entropy, sample
from ..validate import show

TASKS = ("adding", "copy", "temporal", "reber", "char")


def make(name, *, length=None, variant="hochreiter", text=None, seed=0) -> Task:
    """The task called name. length: T for adding/copy/temporal; text: a file for "char"."""
    if name not in TASKS:
        raise ValueError(f"unknown task {show(name)}: expected one of {', '.join(TASKS)}")
    if name in ("adding", "copy", "temporal"):
        T = length if length is not None else 100
        return {"adding": lambda: Adding(T, variant=variant), "copy": lambda: Copy(T),
                "temporal": lambda: TemporalOrder(T)}[name]()
    if name == "char":
        if text is None:
            raise ValueError("task 'char' models a text: give one (--text FILE, e.g. the repository's "
                             "data/tinyshakespeare.txt); the embedded Reber corpus is task 'reber'")
        return CharLM.from_file(text)
    return Reber(seed=seed)


__all__ = ["Task", "make", "TASKS", "Adding", "Copy", "TemporalOrder", "Reber", "CharLM", "Vocab", "sample",
           "conditional_entropy", "reber_string"]
