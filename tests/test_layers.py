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
    "protocol": {"pydantic", "tiktoken"},
    "config": {"pydantic"},
    "routing": {"pydantic"},
    "upstream": {"pydantic", "httpx", "httpcore", "anyio"},
    "middleware": {"pydantic", "httpx", "anyio"},
    "usage": {"pydantic"},
    "server": {"pydantic", "httpx", "anyio", "hypercorn", "starlette"},
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
