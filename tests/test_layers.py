"""The import direction of DESIGN.md, enforced by walking every import in vdm/."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

VDM = Path(__file__).resolve().parents[1] / "vdm"

#: layer -> vdm layers it may import (besides itself).
ALLOWED: dict[str, set[str]] = {
    "protocol": set(),
    "config": {"protocol"},
    "routing": {"protocol", "config"},
    "upstream": {"protocol", "config", "routing"},
    "middleware": {"protocol", "config", "routing", "upstream"},
    "usage": {"protocol"},
    "server": {"protocol", "config", "routing", "upstream", "middleware", "usage"},
    "cli": {"protocol", "config", "routing", "upstream", "middleware", "usage", "server"},
}
#: Third-party packages each layer may use (stdlib is always fine).
THIRD_PARTY: dict[str, set[str]] = {
    # pydantic_core: pydantic's own core, installed with it (jiter's `from_json` in jsonio).
    "protocol": {"pydantic", "pydantic_core", "tiktoken", "orjson"},
    "config": {"pydantic"},
    "routing": {"pydantic"},
    "upstream": {"pydantic", "httpx", "httpcore", "httptools", "anyio", "botocore", "google"},
    "middleware": {"pydantic", "httpx", "anyio"},
    "usage": {"pydantic", "prometheus_client"},
    "server": {
        "pydantic",
        "httpx",
        "anyio",
        "hypercorn",
        "starlette",
        "h11",
        "httptools",
        "uvloop",
    },
    "cli": {"pydantic", "httpx", "anyio", "hypercorn", "starlette", "typer", "psutil"},
}


def _imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), str(path))
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
    return names


def _modules() -> list[Path]:
    return sorted(p for p in VDM.rglob("*.py") if p.parent != VDM)


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(VDM)))
def test_imports_point_down(path: Path) -> None:
    layer = path.relative_to(VDM).parts[0]
    assert layer in ALLOWED, f"{layer} is not a layer of DESIGN.md"
    for name in _imports(path):
        top = name.split(".")[0]
        if top == "vdm":
            parts = name.split(".")
            if len(parts) == 1:
                continue  # `import vdm` / `from vdm import __version__`
            target = parts[1]
            assert target == layer or target in ALLOWED[layer], (
                f"{path.relative_to(VDM)} imports {name}: {layer} may not import {target}"
            )
        elif top not in sys.stdlib_module_names and top != "__future__":
            assert top in THIRD_PARTY[layer], (
                f"{path.relative_to(VDM)} imports {top}, which the {layer} layer may not use"
            )


def test_the_walk_sees_imports() -> None:
    """Guard against a walk that finds nothing and so passes vacuously."""
    found = _imports(VDM / "server" / "app.py")
    assert "vdm.server.state" in found and "vdm.protocol.errors" in found


# -- no import cycles -----------------------------------------------------------------------------


def _module_name(path: Path, root: Path) -> str:
    """`root/cli/common.py` → `vdm.cli.common`; a package is named by its `__init__.py`."""
    parts = path.relative_to(root.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _graph(root: Path) -> dict[str, set[str]]:
    """Module → the modules of the `root` package it imports, wherever the import stands (at
    module level, inside a function, under TYPE_CHECKING): a lazy import still runs, and a
    type-only one still ties the two modules together. `from a import b` names the module a.b
    when there is one, else a; relative imports are resolved. The parent packages that Python
    initialises first are not edges: a package's `__init__` importing its own submodules is no
    circle unless a submodule imports the package back, which is an edge of its own."""
    paths = {_module_name(p, root): p for p in root.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in paths.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*up, base] if base else up)
                for alias in node.names:
                    sub = f"{base}.{alias.name}"
                    targets.add(sub if sub in paths else base)
        graph[name] = {t for t in targets if t in paths and t != name}
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Import cycles found by a depth-first walk, each as a path `a → b → … → a`; each set of
    modules is reported once."""
    found: list[list[str]] = []
    reported: set[frozenset[str]] = set()
    state: dict[str, str] = {}  # "open": on the current path; "done": fully walked
    path: list[str] = []

    def visit(module: str) -> None:
        state[module] = "open"
        path.append(module)
        for target in sorted(graph.get(module, ())):
            if state.get(target) == "open":
                cycle = [*path[path.index(target) :], target]
                if frozenset(cycle) not in reported:
                    reported.add(frozenset(cycle))
                    found.append(cycle)
            elif target not in state:
                visit(target)
        path.pop()
        state[module] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module)
    return found


def test_no_module_imports_itself_through_others() -> None:
    cycles = _cycles(_graph(VDM))
    assert not cycles, "import cycles; move what both sides need into a module below them:\n" + (
        "\n".join("  " + " → ".join(cycle) for cycle in cycles)
    )


def test_the_cycle_walk_finds_cycles() -> None:
    """Guard against a cycle check that passes vacuously."""
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c", "a"]]
    assert _cycles({"a": {"b"}, "b": {"a"}, "c": {"c", "b"}}) == [["a", "b", "a"], ["c", "c"]]
    assert _cycles({"a": {"b", "c"}, "b": {"c"}, "c": set()}) == []


def test_the_graph_sees_every_kind_of_import(tmp_path: Path) -> None:
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("from . import leaf\n")
    (pkg / "sub" / "leaf.py").write_text("def f():\n    from ..top import x\n")
    (pkg / "top.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import pkg.other\n"
        "from pkg.sub import leaf, name\n"
    )
    (pkg / "other.py").write_text("from pkg import top\n")
    graph = _graph(pkg)
    assert graph == {
        "pkg": set(),
        "pkg.sub": {"pkg.sub.leaf"},
        "pkg.sub.leaf": {"pkg.top"},
        "pkg.top": {"pkg.other", "pkg.sub", "pkg.sub.leaf"},
        "pkg.other": {"pkg.top"},
    }
    assert _cycles(graph) == [
        ["pkg.other", "pkg.top", "pkg.other"],
        ["pkg.top", "pkg.sub", "pkg.sub.leaf", "pkg.top"],
    ]


def test_the_graph_of_vdm_has_its_lazy_imports() -> None:
    """The commands import their machinery inside functions: those edges count."""
    graph = _graph(VDM)
    assert "vdm.cli.setup_wizard" in graph["vdm.cli.config_commands"]
    assert "vdm.config.setup_plan" in graph["vdm.cli.setup_wizard"]
