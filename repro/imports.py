"""The package's imports, read from its source: the repro modules that a module runs (its import closure).

Two lists are this closure rather than kept by hand: dvc.yaml's code dependencies of a stage, the closure
of its module (repro/tools/pipelines.py), and checkpoints.TRAINING_CODE, the closure of repro/train.py.
An import counts wherever it sits (inside a function too), and Python runs a package's __init__.py before
any module in it; an import under `if TYPE_CHECKING:` never runs, and does not count.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Iterable

ROOT = Path(__file__).resolve().parents[1]  # the checkout: repro/ is in it


def module_file(module: str, root: Path = ROOT) -> str | None:
    """repro.x.y's file as a repository path (repro/x/y.py, or repro/x/y/__init__.py for a package); None if
    `module` is no module of the repository (an attribute imported from one, say)."""
    path = module.replace(".", "/")
    for candidate in (f"{path}.py", f"{path}/__init__.py"):
        if (root / candidate).is_file():
            return candidate
    return None


def _packages(path: str) -> set[str]:
    """The __init__.py of every package above `path` (repro/a/b.py: repro/__init__.py, repro/a/__init__.py)."""
    parts = path.split("/")[:-1]
    return {"/".join([*parts[:i], "__init__.py"]) for i in range(1, len(parts) + 1)}


def _type_checking(node: ast.AST) -> bool:
    test = getattr(node, "test", None)
    return isinstance(node, ast.If) and (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING"
                                         or isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _nodes(tree: ast.AST):
    """Every node of `tree`, except what is under `if TYPE_CHECKING:`."""
    todo = [tree]
    while todo:
        node = todo.pop()
        yield node
        todo += [child for child in ast.iter_child_nodes(node) if not _type_checking(child)]


def imported(tree: ast.AST, root: Path = ROOT) -> set[str]:
    """The repro modules that the code in `tree` imports, as repository paths, with their packages' __init__.py."""
    found = set()
    for node in _nodes(tree):
        if isinstance(node, ast.ImportFrom) and node.module and (node.module + ".").startswith("repro."):
            found.add(module_file(node.module, root))
            found |= {module_file(f"{node.module}.{alias.name}", root) for alias in node.names}
        elif isinstance(node, ast.Import):
            found |= {module_file(a.name, root) for a in node.names if a.name.startswith("repro.")}
    found.discard(None)
    return found.union(*(_packages(path) for path in found))


def closure(start: Iterable[str], root: Path = ROOT, leave_out: Iterable[str] = ()) -> list[str]:
    """Every repro module that running the modules `start` (repository paths) runs, them included, sorted;
    a module in `leave_out` is neither listed nor followed."""
    leave_out = set(leave_out)
    todo, seen = [p for path in start for p in (path, *_packages(path))], set()
    while todo:
        path = todo.pop()
        if path in seen or path in leave_out:
            continue
        seen.add(path)
        todo += imported(ast.parse((root / path).read_text(encoding="utf-8")), root)
    return sorted(seen)
