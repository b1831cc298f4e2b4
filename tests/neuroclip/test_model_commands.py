"""``neuroclip train``, ``evaluate`` and ``calibrate`` on a small synthetic cohort."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytest.importorskip("torch")

from models.bundle import load_bundle
from neuroclip.cli import main
from tests.conftest import QUICK_TRAIN

pytestmark = pytest.mark.slow


def test_evaluate_cross_validation_writes_json_and_html(train_cohort, tmp_path):
    out = tmp_path / "report"
    assert (
        main(
            [
                "evaluate",
                "--data",
                str(train_cohort),
                "--cv",
                "3",
                "--out",
                str(out),
                "--config",
                str(QUICK_TRAIN),
            ]
        )
        == 0
    )
    report = json.loads((out / "report.json").read_text())
    assert set(report["auc"]) == {
        "fusion",
        "eeg",
        "nirs",
        "handcrafted",
        "handcrafted_eeg",
        "handcrafted_nirs",
    }
    assert set(report["ece"]) == set(report["auc"])
    # 3 + 3 held-out subjects make a coarse AUC: reported, not silent
    assert any("few subjects" in w for w in report["by_model"]["fusion"]["warnings"])
    assert "Warnings" in (out / "report.html").read_text()
    for key in ("n", "mean_delta", "p"):
        assert key in report["rtms_shift"]
    assert {"spearman_r", "p"} <= set(report["craving"])
    assert report["rtms_shift"]["n"] == 3
    assert report["seed"] == 0 and len(report["data_fingerprint"]) == 64
    assert all(0 <= v <= 1 for v in report["window_auc"].values())
    page = (out / "report.html").read_text()
    assert page.count("<img") == 3 and "not a medical device" in page
    assert "http" not in page.split("<body>")[1], "the report must be self-contained"


def test_train_evaluate_bundle_and_calibrate(train_cohort, tmp_path):
    bundle = tmp_path / "b"
    assert (
        main(
            [
                "train",
                "--data",
                str(train_cohort),
                "--out",
                str(bundle),
                "--config",
                str(QUICK_TRAIN),
                "--modalities",
                "eeg",
            ]
        )
        == 0
    )
    loaded = load_bundle(bundle)
    assert loaded.modalities == ("eeg",)
    assert (
        main(
            [
                "evaluate",
                "--data",
                str(train_cohort),
                "--model",
                str(bundle),
                "--out",
                str(tmp_path / "r"),
            ]
        )
        == 0
    )
    report = json.loads((tmp_path / "r" / "report.json").read_text())
    assert "training data" in report["warning"]
    assert (
        main(
            [
                "calibrate",
                "--model",
                str(bundle),
                "--data",
                str(train_cohort),
                "--out",
                str(tmp_path / "b2"),
            ]
        )
        == 0
    )
    b2 = load_bundle(tmp_path / "b2")
    assert b2.sha256 == loaded.sha256
    assert b2.meta["reference"]["prototypes"] != loaded.meta["reference"]["prototypes"]
    assert "refitted" in b2.meta["reference"]["site_recalibration"]["calibration"]


def test_too_many_folds_is_one_clear_error(train_cohort, tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "neuroclip",
            "evaluate",
            "--data",
            str(train_cohort),
            "--cv",
            "5",
            "--out",
            str(tmp_path / "x"),
            "--config",
            str(QUICK_TRAIN),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 2
    assert "for 5 folds" in result.stderr and "Fix:" in result.stderr
    assert "Traceback" not in result.stderr


def test_live_side_runs_without_torch(quick_bundle, train_windows, tmp_path):
    """The bundle loads and scores with torch made unimportable."""
    out, _ = quick_bundle
    import numpy as np

    for name in ("eeg", "nirs", "context", "features"):
        np.save(tmp_path / f"{name}.npy", getattr(train_windows, name)[:2])
    code = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'torch' or name.startswith('torch.'):\n"
        "            raise ImportError(name + ' is blocked')\n"
        "sys.meta_path.insert(0, Block())\n"
        "import numpy as np\n"
        "from models.bundle import BundleScorer, load_bundle\n"
        f"scorer = BundleScorer(load_bundle({str(out)!r}))\n"
        f"arrays = {{n: np.load({str(tmp_path)!r} + f'/{{n}}.npy') for n in "
        "('eeg', 'nirs', 'context', 'features')}\n"
        f"names = {train_windows.feature_names!r}\n"
        "s = scorer.score(**scorer.array_feeds(**arrays, feature_names=names))\n"
        "assert s.probability.shape == (2,)\n"
        "assert 'torch' not in [m for m in sys.modules if sys.modules[m] is not None]\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
