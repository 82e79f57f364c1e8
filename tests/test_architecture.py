"""The package's layout rules, checked on the source: imports run one way (no cycles, lazy
function-level imports included), no module uses another module's private names, no module
is much over 500 lines, ``io/`` stays data, and every error class lives in exceptions.py."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "avocado_xr"


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> list[tuple[str, list[str]]]:
    """(absolute module, imported names) of every import statement in a file."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            out.append((module, [a.name for a in node.names]))
        elif isinstance(node, ast.Import):
            out += [(a.name, []) for a in node.names]
    return out


MODULES = {_module_name(p): p for p in PACKAGE.rglob("*.py")}


def _graph() -> dict[str, set[str]]:
    graph = {}
    for name, path in MODULES.items():
        targets = set()
        for module, names in _imports(path):
            if module == "avocado_xr" and names and set(names) <= {"__version__"}:
                continue  # the version string, not the package's contents
            for candidate in [module] + [f"{module}.{n}" for n in names]:
                if candidate in MODULES and candidate != name:
                    targets.add(candidate)
        graph[name] = targets
    return graph


def test_no_import_cycles():
    graph = _graph()
    packages = {n for n, p in MODULES.items() if p.name == "__init__.py"}
    # a package's __init__ re-exports its modules; edges into an __init__ from inside the
    # package itself would make every module depend on all its siblings, so skip those
    edges = {
        n: {t for t in ts if not (t in packages and n.startswith(t + "."))}
        for n, ts in graph.items()
    }
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for target in sorted(edges[node]):
            if state.get(target) == 1:
                cycle = stack[stack.index(target) :] + [target]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if target not in state:
                visit(target)
        stack.pop()
        state[node] = 2

    for node in sorted(edges):
        if node not in state:
            visit(node)


def test_no_module_imports_private_names_of_another():
    offenders = []
    for name, path in MODULES.items():
        for module, names in _imports(path):
            if module.startswith("avocado_xr") and module != name:
                offenders += [f"{name} imports {module}.{n}" for n in names if n.startswith("_")]
    assert not [o for o in offenders if not o.endswith("__version__")], offenders


def test_modules_are_small():
    sizes = {name: len(path.read_text().splitlines()) for name, path in MODULES.items()}
    assert max(sizes.values()) <= 520, sorted(sizes.items(), key=lambda kv: -kv[1])[:3]


def test_every_exception_class_lives_in_exceptions_py():
    stray = []
    for name, path in MODULES.items():
        if name == "avocado_xr.exceptions":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef) and any(
                getattr(base, "id", getattr(base, "attr", "")).endswith(("Error", "Warning"))
                for base in node.bases
            ):
                stray.append(f"{name}.{node.name}")
    assert not stray, stray


@pytest.mark.parametrize("top", ["io"])
def test_data_folders_hold_no_python(top):
    assert not list((PACKAGE.parent / top).rglob("*.py"))
