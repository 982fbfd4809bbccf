"""Import hygiene of src/bptt, read with `ast` (nothing is imported):

(a) no import cycle between bptt modules, counting module-level AND function-level imports;
(b) no module uses another module's private names (`from .x import _y`, `x._y` on an imported
    bptt module, a private module `_m` imported from outside its own package), no exception;
(c) the top package `bptt` is a re-export hub for users: nothing inside src/bptt imports from it
    (`import bptt`, `from bptt import name`, `from .. import name` reaching the top package, or
    `bptt.name` after `import bptt.x`), except `__version__` inside a function.
    `from bptt import x` / `from . import x` with x a submodule imports the submodule bptt.x.

The graph: one node per module (a package is its __init__). `A -> B` when A imports B:
- `import bptt.x.y`, `from bptt.x.y import n` and their relative spellings import bptt.x.y, and
  the packages above it (bptt.x, whose __init__ runs first) unless A itself lies inside them;
- `from .x import n` with n a submodule of x imports x.n, otherwise it imports x (the package
  __init__, where n is defined or re-exported): so a submodule that takes a name from its own
  package's __init__, which imports that submodule, is a cycle; an __init__ importing its own
  submodules is not one by itself.
Imports under `if TYPE_CHECKING:` never run, so they make no edge (their names are still checked).

Every violation is printed (run with -s to see them on success too) and listed in the failure.
"""
from __future__ import annotations

import ast
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
TOP = "bptt"
# names a module may take from the top package, inside a function only (defined there, not re-exported)
FROM_TOP = frozenset({"__version__"})


@dataclass(frozen=True)
class Edge:
    src: str
    dst: str
    where: str  # "path:line"
    what: str   # the statement


@dataclass
class Analysis:
    modules: dict                               # module name -> path
    edges: list = field(default_factory=list)  # [Edge]
    private: list = field(default_factory=list)  # ["path:line: message"]
    hub: list = field(default_factory=list)


def is_private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def ancestors(mod: str):
    """The packages above `mod`, innermost first: bptt.a.b.c -> bptt.a.b, bptt.a, bptt."""
    parts = mod.split(".")
    return [".".join(parts[:i]) for i in range(len(parts) - 1, 0, -1)]


def find_modules(src: Path, top: str) -> dict:
    out = {}
    for path in sorted((src / top).rglob("*.py")):
        parts = list(path.relative_to(src).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _type_checking_nodes(tree) -> set:
    """ids of the nodes inside `if TYPE_CHECKING:` / `if typing.TYPE_CHECKING:` blocks."""
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If):
            t = node.test
            name = t.id if isinstance(t, ast.Name) else t.attr if isinstance(t, ast.Attribute) else None
            if name == "TYPE_CHECKING":
                for stmt in node.body:
                    out.update(id(n) for n in ast.walk(stmt))
    return out


def _module_level(tree) -> set:
    """ids of the import statements that run when the module is imported (not inside a def/lambda)."""
    out = set()

    def visit(node):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                continue
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                out.add(id(child))
            visit(child)

    visit(tree)
    return out


def rebound_submodules(modules: dict, top: str) -> dict:
    """Names the top __init__ binds to something else than its submodule of that name (bptt.flow: the function)."""
    out = {}
    tree = ast.parse(modules[top].read_text())
    for node in tree.body:
        if isinstance(node, ast.ImportFrom):
            for a in node.names:
                name = a.asname or a.name
                if f"{top}.{name}" in modules and not (node.level == 1 and node.module is None and a.name == name):
                    out[name] = f"from {'.' * node.level}{node.module or ''} import {a.name}"
    return out


def analyse(src: Path = SRC, top: str = TOP) -> Analysis:
    modules = find_modules(src, top)
    res = Analysis(modules)
    shadowed = rebound_submodules(modules, top)
    for mod, path in modules.items():
        rel = path.relative_to(src.parent) if src.parent in path.parents else path
        text = path.read_text()
        tree = ast.parse(text, filename=str(path))
        lines = text.splitlines()
        is_pkg = path.name == "__init__.py"
        package = mod if is_pkg else mod.rpartition(".")[0]
        skip_edges = _type_checking_nodes(tree)
        at_top = _module_level(tree)
        bound = {}  # local name -> bptt module it refers to

        def loc(node):
            return f"{rel}:{node.lineno}"

        def stmt(node):
            return lines[node.lineno - 1].strip()

        def edge(node, dst, via=""):
            if dst == mod or id(node) in skip_edges:
                return
            res.edges.append(Edge(mod, dst, loc(node), stmt(node) + via))
            # importing dst runs the __init__ of every package above it first (the top one is the hub,
            # and the packages that hold `mod` are already being imported when `mod` runs)
            for p in ancestors(dst):
                if p != top and not (mod == p or mod.startswith(p + ".")):
                    res.edges.append(Edge(mod, p, loc(node), stmt(node) + f"  (runs {p}/__init__ first)"))

        def private_module(node, target):
            """A private module (a part named _x) may be imported only from inside the package that holds it."""
            parts = target.split(".")
            for i, part in enumerate(parts):
                owner = ".".join(parts[:i])
                if is_private(part) and not (mod == owner or mod.startswith(owner + ".")):
                    res.private.append(f"{loc(node)}: {mod} imports the private module {'.'.join(parts[:i + 1])} "
                                       f"from outside {owner}: {stmt(node)}")
                    return

        def top_name(node, name, how):
            if name in FROM_TOP and id(node) not in at_top:
                return
            extra = " (inside a function only)" if name in FROM_TOP else ""
            res.hub.append(f"{loc(node)}: {mod} takes {name!r} from the top package {top} ({how}){extra}; "
                           f"import it from the module that defines it: {stmt(node)}")

        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for a in node.names:
                    if a.name != top and not a.name.startswith(top + "."):
                        continue
                    if a.name == top:
                        res.hub.append(f"{loc(node)}: {mod} does `import {top}`: take each name from the module "
                                       f"that defines it, not from the top package: {stmt(node)}")
                        bound[a.asname or top] = top
                        continue
                    if a.name not in modules:
                        continue
                    edge(node, a.name)
                    private_module(node, a.name)
                    if a.asname:
                        bound[a.asname] = a.name
                    else:  # `import bptt.x.y` binds the name bptt
                        bound[top] = top
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package
                    for _ in range(node.level - 1):
                        base = base.rpartition(".")[0]
                    target = f"{base}.{node.module}" if node.module else base
                elif node.module and (node.module == top or node.module.startswith(top + ".")):
                    target = node.module
                else:
                    continue
                if target not in modules:
                    continue
                private_module(node, target)
                for a in node.names:
                    sub = f"{target}.{a.name}"
                    if sub in modules:  # a submodule
                        if target == top and a.name in shadowed:
                            res.hub.append(f"{loc(node)}: {mod} imports {a.name!r} from {top}, whose __init__ rebinds "
                                           f"it ({shadowed[a.name]}): at run time this is that object, not the "
                                           f"module {sub}; write `from {sub} import ...`: {stmt(node)}")
                        edge(node, sub)
                        private_module(node, sub)
                        bound[a.asname or a.name] = sub
                        continue
                    if target == top:
                        if a.name == "*":
                            res.hub.append(f"{loc(node)}: {mod} does `from {top} import *`: {stmt(node)}")
                        else:
                            top_name(node, a.name, "from-import")
                        continue
                    edge(node, target)
                    if is_private(a.name) and mod != target:
                        res.private.append(f"{loc(node)}: {mod} imports the private name {a.name} of {target}: "
                                           f"{stmt(node)}")

        for node in ast.walk(tree):  # x._y on a bptt module x (also bptt.x._y, bptt.name)
            if not isinstance(node, ast.Attribute) or not isinstance(node.ctx, ast.Load):
                continue
            chain, base = [], node
            while isinstance(base, ast.Attribute):
                chain.append(base.attr)
                base = base.value
            if not isinstance(base, ast.Name) or base.id not in bound:
                continue
            chain.reverse()
            target, spelled = bound[base.id], base.id
            for attr in chain:
                spelled += "." + attr
                if f"{target}.{attr}" in modules and not (target == top and attr in shadowed):
                    target = f"{target}.{attr}"
                    continue
                if target == top:
                    top_name(node, attr, f"`{spelled}`")
                elif is_private(attr) and mod != target:
                    res.private.append(f"{loc(node)}: {mod} uses the private name {attr} of {target} "
                                       f"(`{spelled}`): {stmt(node)}")
                break
    # an Attribute chain a._b.c is walked from each of its Attribute nodes: keep each message once
    res.private = sorted(set(res.private), key=_by_place)
    res.hub = sorted(set(res.hub), key=_by_place)
    return res


def _by_place(msg: str):
    path, line, _ = msg.split(":", 2)
    return path, int(line), msg


def strongly_connected(graph: dict) -> list:
    """Tarjan's strongly connected components of {node: set(successors)}, each a sorted list."""
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def shortest_cycle(graph: dict, start: str, members: set) -> list:
    """The shortest path start -> ... -> start inside `members` (breadth first)."""
    prev, frontier = {start: None}, [start]
    while frontier:
        nxt = []
        for v in frontier:
            for w in sorted(graph.get(v, ())):
                if w == start:
                    path = [v]
                    while prev[path[-1]] is not None:
                        path.append(prev[path[-1]])
                    return list(reversed(path)) + [start]
                if w in members and w not in prev:
                    prev[w] = v
                    nxt.append(w)
        frontier = nxt
    return []


def cycles(res: Analysis) -> list:
    """One message per import cycle (strongly connected component): its modules, a shortest cycle, its edges."""
    graph = {}
    for e in res.edges:
        graph.setdefault(e.src, set()).add(e.dst)
    out = []
    for comp in strongly_connected(graph):
        if len(comp) < 2:
            continue
        members = set(comp)
        path = shortest_cycle(graph, comp[0], members)
        lines = [f"import cycle among {len(comp)} modules: {', '.join(comp)}",
                 f"  shortest: {' -> '.join(path)}", "  its imports:"]
        seen = set()
        for a, b in zip(path, path[1:]):
            for e in res.edges:
                if e.src == a and e.dst == b and (e.where, e.what) not in seen:
                    seen.add((e.where, e.what))
                    lines.append(f"    {a} -> {b}  {e.where}: {e.what}")
        inner = [e for e in res.edges if e.src in members and e.dst in members and (e.where, e.what) not in seen]
        if inner:
            lines.append("  other imports inside the cycle:")
            lines += [f"    {e.src} -> {e.dst}  {e.where}: {e.what}" for e in inner]
        out.append("\n".join(lines))
    return out


@lru_cache(maxsize=None)
def _analysis() -> Analysis:
    return analyse()


def _report(title: str, found: list) -> str:
    text = f"{len(found)} {title}:\n" + "\n".join(f"- {f}" for f in found)
    print(text)
    return text


# --- the rules, on src/bptt -------------------------------------------------------------------
def test_the_scan_sees_the_package():
    res = _analysis()
    assert {"bptt", "bptt.sweep.spec", "bptt.sweep.points", "bptt.fast.driver", "bptt.tasks.base"} <= set(res.modules)
    assert any(e.src == "bptt.sweep.runner" and e.dst == "bptt.sweep.spec" for e in res.edges)


def test_no_import_cycle():
    found = cycles(_analysis())
    assert not found, _report("import cycle(s) between bptt modules (module- or function-level imports)", found)


def test_no_private_names_across_modules():
    found = _analysis().private
    assert not found, _report("use(s) of another module's private names", found)


def test_nothing_inside_bptt_imports_from_the_top_package():
    found = _analysis().hub
    assert not found, _report("import(s) from the top package bptt, a re-export hub for users only", found)


# --- the analyser itself, on small made-up packages ----------------------------------------------
def _tree(tmp_path, files: dict) -> Analysis:
    for name, text in files.items():
        p = tmp_path / "pkg" / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    for d in [tmp_path / "pkg", *(p for p in (tmp_path / "pkg").rglob("*") if p.is_dir())]:
        (d / "__init__.py").touch()
    return analyse(tmp_path, "pkg")


def test_analyser_finds_cycles_at_every_level_and_spelling(tmp_path):
    res = _tree(tmp_path, {
        "a.py": "from .b import f\n",
        "b.py": "def f():\n    import pkg.c\n",
        "c.py": "def g():\n    from . import a\n",
        "sub/__init__.py": "from .x import X\n",
        "sub/x.py": "from . import helper\nX = 1\n",       # helper is a name of sub/__init__: cycle
        "sub/y.py": "from .x import X\n",                  # sub -> x only: no cycle with y
        "d.py": "from pkg import e\n",
        "e.py": "from .d import *\n",
    })
    found = cycles(res)
    text = "\n".join(found)
    assert len(found) == 3, text
    assert "pkg.a, pkg.b, pkg.c" in text and "pkg.sub, pkg.sub.x" in text and "pkg.d, pkg.e" in text
    assert "pkg.sub.y" not in text


def test_analyser_package_init_importing_submodules_is_no_cycle(tmp_path):
    res = _tree(tmp_path, {
        "__init__.py": "from .a import f\nfrom . import b\n",
        "a.py": "from .b import g\ndef f(): pass\n",
        "b.py": "def g(): pass\n",
        "sub/__init__.py": "from .x import X\n",
        "sub/x.py": "X = 1\n",
        "c.py": "from .sub.x import X\n",     # c -> sub.x and sub (its __init__ runs first)
    })
    assert cycles(res) == []
    assert {(e.src, e.dst) for e in res.edges if e.src == "pkg.c"} == {("pkg.c", "pkg.sub.x"), ("pkg.c", "pkg.sub")}
    assert res.hub == [] and res.private == []


def test_analyser_finds_private_names_and_top_package_use(tmp_path):
    res = _tree(tmp_path, {
        "__init__.py": "from .a import f\nfrom .g import g\nfrom . import a\n__version__ = '1'\n",
        "a.py": "def _h(): pass\ndef f(): return _h()\n",
        "b.py": ("from .a import _h\nfrom . import a\nimport pkg.a as aa\nx = a._h\ny = aa._h()\n"
                 "def v():\n    from . import __version__\n"),
        "c.py": ("import pkg\nfrom pkg import f\nfrom . import __version__\nimport pkg.a\nz = pkg.a._h\nw = pkg.f\n"
                 "from . import a\nfrom pkg import g\nv = pkg.g\n"),  # a: the module; g: __init__'s g, not pkg.g
        "g.py": "def g(): pass\n",
        "fast/engine.py": "from .kernels import _k\nfrom . import kernels\nkernels._k()\n",
        "fast/kernels.py": "def _k(): pass\n",
        "sub/_m.py": "X = 1\n",
        "sub/s.py": "from ._m import X\n",          # fine: inside its package
        "d.py": "from .sub._m import X\nfrom .sub import s\ns._private\n",
    })
    priv, hub = "\n".join(res.private), "\n".join(res.hub)
    assert "pkg/b.py:1" in priv and "pkg/b.py:4" in priv and "pkg/b.py:5" in priv
    assert "pkg/c.py:5" in priv and "private module pkg.sub._m" in priv and "pkg/d.py:3" in priv
    assert "pkg/fast/engine.py:1" in priv and "pkg/fast/engine.py:3" in priv  # no unit is exempt
    assert "sub/s.py" not in priv
    assert len(res.private) == 8, priv
    assert "pkg/b.py" not in hub  # __version__ inside a function
    for line in (1, 2, 3, 6, 8, 9):
        assert f"pkg/c.py:{line}:" in hub, hub
    assert len(res.hub) == 6, hub


def test_analyser_ignores_type_checking_imports_for_cycles(tmp_path):
    res = _tree(tmp_path, {
        "a.py": "from .b import B\n",
        "b.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .a import A\nB = 1\n",
    })
    assert cycles(res) == []


if __name__ == "__main__":
    pytest.main([__file__, "-q", "-s"])
