"""Run the neuroclip CLI with torch made unimportable (the live path must never need it)."""

from __future__ import annotations

import sys


class _BlockTorch:
    """A meta-path finder that refuses ``torch`` and its submodules."""

    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ImportError(f"{name} is blocked: the live path must not import torch")
        return None


if __name__ == "__main__":
    sys.meta_path.insert(0, _BlockTorch())
    from neuroclip.cli import main

    code = main(sys.argv[1:])
    assert "torch" not in sys.modules
    sys.exit(code)
