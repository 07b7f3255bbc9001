"""The package's folders are its architecture: every import points down the layers
cli -> web -> mailing -> authoring -> the ground (errors, source, shapes, config, ports)."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "newsletter"
LAYERS = ["ground", "authoring", "mailing", "web", "cli"]


def _layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 2 and parts[1] in LAYERS else "ground"


def _imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("newsletter"):
            found.update(f"{node.module}.{a.name}" if node.module == "newsletter" else node.module
                         for a in node.names)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("newsletter"))
    return found


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_point_down_the_layers(path):
    module = ".".join(("newsletter", *path.relative_to(PACKAGE).with_suffix("").parts))
    own = LAYERS.index(_layer(module))
    upward = [m for m in _imports(path) if LAYERS.index(_layer(m)) > own]
    assert not upward, f"{module} imports from a higher layer: {upward}"


def test_modules_stay_small():
    long = {str(p.relative_to(PACKAGE)): n for p in PACKAGE.rglob("*.py")
            if (n := len(p.read_text().splitlines())) > 330}
    assert not long, f"modules past ~300 lines (two ideas?): {long}"
