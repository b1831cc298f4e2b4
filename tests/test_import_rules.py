"""The layers import only what they may, read from the source (every import, also lazy ones).

- ``contract`` (message contract, settings, errors) imports nothing else of ours;
- ``dashboard`` imports ``contract`` and itself, nothing of the monitor or the models;
- ``models`` imports neither ``streamer``, ``dashboard`` nor ``neuroclip``, and no LSL;
- the live path (``streamer``, and ``models`` modules it reaches) never imports torch.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.conftest import REPO

OURS = ("contract", "models", "streamer", "dashboard", "neuroclip")
ALLOWED = {
    "contract": {"contract"},
    "dashboard": {"dashboard", "contract"},
    "models": {"models", "contract"},
}
FORBIDDEN_THIRD_PARTY = {"models": {"pylsl", "aiomqtt", "paho", "dash"}}
TORCH_FREE = ("streamer",)


def _imports(path: Path) -> set[str]:
    """Top-level names of every module ``path`` imports, anywhere in the file."""
    tree = ast.parse(path.read_text(), filename=str(path))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def _modules(package: str) -> list[Path]:
    files = sorted((REPO / package).rglob("*.py"))
    assert files, f"no modules in {package}/"
    return files


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_a_layer_imports_only_the_layers_below_it(package):
    wrong = []
    for path in _modules(package):
        imported = _imports(path)
        ours = {name for name in imported if name in OURS} - ALLOWED[package]
        banned = imported & FORBIDDEN_THIRD_PARTY.get(package, set())
        if ours or banned:
            wrong.append(f"{path.relative_to(REPO)}: {', '.join(sorted(ours | banned))}")
    assert not wrong, f"{package}/ may import only {sorted(ALLOWED[package])}:\n" + "\n".join(wrong)


@pytest.mark.parametrize("package", TORCH_FREE)
def test_the_live_path_never_imports_torch(package):
    wrong = [str(p.relative_to(REPO)) for p in _modules(package) if "torch" in _imports(p)]
    assert not wrong, f"torch imported on the live path: {wrong}"


def test_the_rules_see_a_violation(tmp_path):
    """The checker itself: a lazy import inside a function counts."""
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from streamer.monitor import Monitor\n    import pylsl\n")
    assert {"streamer", "pylsl"} <= _imports(module)
