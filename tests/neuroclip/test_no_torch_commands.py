"""``evaluate --model`` and ``calibrate`` run on ONNX Runtime alone; ``train`` and
``evaluate --cv`` refuse in one line, with the install command, where torch is missing.

Each command runs in a subprocess whose import system refuses the blocked modules, as
``tests/streamer/no_torch_main.py`` does for torch: first torch alone, then the whole
``train`` extra (torch, scikit-learn, matplotlib, onnx, onnxscript), which is what a plain
``pip install .`` lacks. The data is the shared ``tiny_cohort`` (one MA subject pre and post,
one HC subject), scored with the committed default bundle.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

DEFAULT_BUNDLE = REPO / "models" / "default_bundle"
TORCH = ("torch",)
TRAIN_EXTRA = ("torch", "sklearn", "matplotlib", "onnx", "onnxscript")

BLOCKED_MAIN = """
import sys
BLOCKED = set(sys.argv[1].split(","))
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r} (blocked)")
        return None
sys.meta_path.insert(0, Block())
from neuroclip.cli import main
code = main(sys.argv[2:])
leaked = sorted(m for m in BLOCKED if m in sys.modules)
assert not leaked, f"imported although blocked: {leaked}"
sys.exit(code)
"""


def _neuroclip(blocked: tuple[str, ...], *args: str | Path) -> subprocess.CompletedProcess:
    """Run ``neuroclip ARGS`` with ``blocked`` modules unimportable."""
    return subprocess.run(
        [sys.executable, "-c", BLOCKED_MAIN, ",".join(blocked), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=240,
        cwd=REPO,
    )


@pytest.mark.parametrize("blocked", [TORCH, TRAIN_EXTRA], ids=["no-torch", "no-train-extra"])
def test_evaluate_model_and_calibrate_run_without_torch(tiny_cohort, tmp_path, blocked):
    report_dir = tmp_path / "report"
    result = _neuroclip(
        blocked, "evaluate", "--data", tiny_cohort, "--model", DEFAULT_BUNDLE, "--out", report_dir
    )
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    report = json.loads((report_dir / "report.json").read_text())
    assert report["evaluation"] == "bundle" and "neuroclip-default" in report["auc"]
    run = report["run"]
    assert run["seed"] is not None and len(run["data_fingerprint"]) == 64
    assert run["model"]["sha256"] and "torch" not in run["versions"]
    page = (report_dir / "report.html").read_text()
    assert "<h2>Run</h2><table" in page and run["data_fingerprint"] in page
    if "matplotlib" in blocked:
        assert "<img" not in page and "Figures left out" in page
    else:
        assert page.count("<img") == 3

    calibrated = tmp_path / "calibrated"
    result = _neuroclip(
        blocked, "calibrate", "--model", DEFAULT_BUNDLE, "--data", tiny_cohort, "--out", calibrated
    )
    assert result.returncode == 0, result.stderr
    assert (calibrated / "model.onnx").is_file()
    meta = json.loads((calibrated / "bundle.json").read_text())
    assert "site_recalibration" in meta["reference"]

    from models.bundle import load_bundle

    assert load_bundle(calibrated).sha256 == load_bundle(DEFAULT_BUNDLE).sha256


@pytest.mark.parametrize(
    "args",
    [
        ["train", "--out", "BUNDLE"],
        ["evaluate", "--cv", "3", "--out", "REPORT"],
    ],
    ids=["train", "evaluate-cv"],
)
def test_training_commands_refuse_in_one_line_without_torch(tmp_path, args):
    argv = [str(tmp_path / a) if a.isupper() else a for a in args]
    result = _neuroclip(TORCH, *argv, "--data", tmp_path / "bids")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "torch" in lines[0] and "not installed" in lines[0]
    assert "Fix: bash scripts/setup.sh train" in lines[0]
    assert not (tmp_path / args[-1]).exists()
