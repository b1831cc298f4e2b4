"""The evaluation report (models/report.py): run table, titles, legends, few-subject warnings.

Unit tier: the reports come from :func:`models.evaluation.summarise` on small hand-made window
sets (no simulation, no training, no torch).
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from pathlib import Path

import numpy as np
import pytest

from models import report as report_module
from models.dataset import WindowSet
from models.evaluation import (
    MIN_SUBJECTS_PER_GROUP,
    _auc,
    bundle_summary,
    roc_points,
    summarise,
)
from models.report import render_html, roc_title
from neuroclip.modelling import run_info

FINGERPRINT = "ab" * 32


def _windows(n_ma: int, n_hc: int, seed: int = 0) -> tuple[WindowSet, np.ndarray]:
    """Four windows per session: MA subjects pre and post, HC subjects none; craving rated.

    Returns the windows and a probability per window that separates the groups noisily."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n_ma):
        rows += [(f"ma{i}", "pre", 1, "pre"), (f"ma{i}", "post", 1, "post")]
    rows += [(f"hc{i}", "none", 0, "none") for i in range(n_hc)]
    rows = [r for r in rows for _ in range(4)]
    n = len(rows)
    subject, session, group, rtms = (np.array(c) for c in zip(*rows, strict=True))
    craving = np.where(group == 1, rng.uniform(30, 90, n), rng.uniform(0, 30, n))
    ws = WindowSet(
        eeg=np.zeros((n, 1, 1)),
        nirs=np.zeros((n, 1, 1)),
        subject=subject,
        session=session,
        group=group.astype(int),
        rtms=rtms,
        craving=craving,
        t_end=np.arange(n, dtype=float),
        usable=np.ones(n, bool),
        context=np.zeros((n, 2, 1)),
        features=np.zeros((n, 1)),
        eeg_channels=("Cz",),
        nirs_channels=("S1_D1 hbo",),
        fingerprint=FINGERPRINT,
    )
    probability = np.clip(0.5 + 0.3 * (group - 0.5) + rng.normal(0, 0.2, n), 0.01, 0.99)
    return ws, probability


def _bundle_report(n_ma: int, n_hc: int) -> dict:
    ws, p = _windows(n_ma, n_hc)
    report = summarise(ws, {"bundle-x": p})
    report.update(
        evaluation="bundle",
        cv=None,
        seed=7,
        model="some/bundle",
        model_name="bundle-x",
        data_fingerprint=ws.fingerprint,
        n_subjects=len(ws.subjects),
        n_windows=len(ws),
        n_windows_excluded=0,
        bundle=bundle_summary(
            {
                "name": "bundle-x",
                "model_sha256": "cd" * 32,
                "code_version": "0.1.0",
                "training": {"seed": 7, "n_fit_subjects": 20, "data_fingerprint": "ef" * 32},
                "metrics": {"validation": {"subjects": 2, "subject_auc": 0.44}},
            }
        ),
    )
    args = argparse.Namespace(data=Path("/data/site"), model=Path("some/bundle"))
    report["run"] = run_info(args, report, dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC), 12.5)
    return report


def _cv_report(n_ma: int, n_hc: int) -> dict:
    ws, p = _windows(n_ma, n_hc, seed=1)
    report = summarise(ws, {"fusion": p, "handcrafted": np.clip(p + 0.05, 0, 1)})
    report.update(evaluation="cross-validation", cv=3, seed=0, data_fingerprint=ws.fingerprint)
    return report


@pytest.fixture
def figures(monkeypatch):
    """Every matplotlib figure the report renders, in order."""
    pytest.importorskip("matplotlib")
    drawn = []
    original = report_module._png

    def keep(fig):
        drawn.append(fig)
        return original(fig)

    monkeypatch.setattr(report_module, "_png", keep)
    return drawn


def test_auc_without_sklearn_equals_sklearn():
    metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 200)
    score = np.round(rng.normal(y * 0.5, 1.0), 1)  # rounded: many ties
    assert _auc(y, score) == pytest.approx(metrics.roc_auc_score(y, score))
    fpr, tpr = roc_points(y, score)
    ref_fpr, ref_tpr, _ = metrics.roc_curve(y, score, drop_intermediate=False)
    assert np.allclose(fpr, ref_fpr) and np.allclose(tpr, ref_tpr)
    assert _auc(np.ones(4), np.arange(4.0)) is None


def test_run_table_has_fingerprint_seed_times_versions_and_model():
    report = _bundle_report(2, 2)
    run = report["run"]
    assert run["seed"] == 7 and run["data_fingerprint"] == FINGERPRINT
    assert run["started"] == "2026-01-02T03:04:05+00:00"
    assert run["finished"] == "2026-01-02T03:04:17+00:00" and run["duration_s"] == 12.5
    assert {"neuroclip", "numpy", "onnxruntime", "mne"} <= set(run["versions"])
    page = render_html(report)
    table = page.split("<h2>Run</h2>")[1]
    assert table.startswith("<table") and "<pre>" not in page
    assert FINGERPRINT in table and "cd" * 32 in table and "ef" * 32 in table
    assert "<th>seed</th><td>7 " in table and "none: the bundle" in table
    assert "2026-01-02T03:04:05+00:00" in table and "12.5 s" in table
    assert "neuroclip 0.1.0" in table and "onnxruntime " in table
    assert "model code version" in table


def test_cross_validation_run_table_from_the_report_fields():
    page = render_html(_cv_report(2, 2))
    table = page.split("<h2>Run</h2>")[1]
    assert "<th>cv (folds)</th><td>3</td>" in table
    assert "<th>seed</th><td>0</td>" in table and FINGERPRINT in table


def test_few_subjects_are_warned_on_every_figure_and_number(figures):
    report = _bundle_report(2, 2)
    metrics = report["by_model"]["bundle-x"]
    assert metrics["few_subjects"] == {"auc": True, "rtms_shift": True, "craving": True}
    assert sum("few subjects" in w for w in metrics["warnings"]) == 3
    page = render_html(report)
    assert page.count('<figcaption class="warn">') == 3
    assert f"fewer than {MIN_SUBJECTS_PER_GROUP} subjects in either group" in page
    # the bundle's own validation AUC from 2 subjects carries a visible warning
    section = page.split("<h2>The bundle's own validation</h2>")[1].split("<h2>")[0]
    assert "0.44 &#9888;" in section
    assert "validation subject AUC 0.44 rests on 2 validation subjects" in section
    assert all("WARNING: few subjects" in t.get_text() for f in figures for t in f.texts[-1:])


def test_enough_subjects_carry_no_auc_warning(figures):
    n = MIN_SUBJECTS_PER_GROUP
    report = _cv_report(n, n)
    fusion = report["by_model"]["fusion"]
    assert fusion["few_subjects"]["auc"] is False and fusion["few_subjects"]["rtms_shift"] is False
    assert not any("AUC and ECE rest on" in w for w in fusion["warnings"])
    page = render_html(report)
    assert page.count("<figcaption") == 0
    assert not any(t.get_text().startswith("WARNING") for t in figures[0].texts)


def test_roc_title_says_what_was_scored(figures):
    bundle = _bundle_report(2, 2)
    assert "held-out folds" not in roc_title(bundle)
    assert "bundle-x" in roc_title(bundle) and "this dataset" in roc_title(bundle)
    render_html(bundle)
    assert "held-out folds" not in figures[0].axes[0].get_title()
    assert "bundle-x" in figures[0].axes[0].get_title()
    cv = _cv_report(3, 3)
    assert "held-out folds" in roc_title(cv)
    page = render_html(cv)
    assert "held-out folds" in figures[3].axes[0].get_title()
    assert "Bundle" not in page.split("<h2>")[1]


def test_every_figure_with_several_series_has_a_legend(figures):
    render_html(_cv_report(3, 3))
    roc, shift, craving = figures
    for fig in figures:
        assert fig.axes[0].get_legend() is not None
    labels = [t.get_text() for t in craving.axes[0].get_legend().get_texts()]
    assert any(label.startswith("MA, pre") for label in labels)
    assert any(label.startswith("MA, post") for label in labels)
    assert any(label.startswith("HC") for label in labels)
    shift_labels = [t.get_text() for t in shift.axes[0].get_legend().get_texts()]
    assert "MA subject, pre to post" in shift_labels and "HC sessions, 10-90th pct" in shift_labels
    roc_labels = [t.get_text() for t in roc.axes[0].get_legend().get_texts()]
    assert {"chance"} < set(roc_labels) and any(x.startswith("fusion (AUC") for x in roc_labels)


def test_report_without_matplotlib_keeps_the_tables(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib raises
    page = render_html(_bundle_report(2, 2))
    assert "<img" not in page and "Figures left out: matplotlib is not installed" in page
    assert "<h2>Run</h2><table" in page


def test_training_data_warning_is_shown():
    report = _bundle_report(2, 2)
    report["warning"] = "this is the bundle's own training data: not a held-out estimate"
    assert "own training data" in render_html(report).split("<h2>")[0]  # atop the page
    assert "not held out" in roc_title(report)
