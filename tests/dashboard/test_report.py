"""``neuroclip report``: session logs in, one self-contained HTML page out."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from dashboard.report import SessionReports, build_report, read_logs
from models.bundle import Scores
from models.pipeline.grid import WindowGrid
from models.pipeline.phase import PhaseInfo
from models.pipeline.pipeline import GatedWindow
from neuroclip.cli import main
from streamer.messages import Identity, SessionScoring, score_message

META = {
    "calibration": {"session": {"a": 1.0, "b": 0.0, "window_sd": 1.0}},
    "reference": {"hc_session": {"p05": 0.1, "median": 0.3, "p95": 0.5}},
}
PLAN = [("baseline", None)] * 40 + [("rtms_train", None)] * 5 + [("inter_train", "drug")] * 30

GRID = WindowGrid(window_s=10.0, hop_s=1.0, warmup_s=0.0)
"""Windows of 10 s every second: each counts as a tenth of an independent one."""


def write_log(folder: Path, session: str, p: float) -> Path:
    """A session log as the monitor writes it: baseline, a train (unusable), cue windows."""
    scoring = SessionScoring(META, smoothing_windows=5, grid=GRID)
    ident = Identity("room2", session, "neuroclip-default", "ab" * 32)
    lines = []
    rng = np.random.default_rng(len(session))
    for seq, (phase, cue) in enumerate(PLAN):
        usable = phase != "rtms_train"
        window = GatedWindow(
            seq,
            100.0 + seq,
            110.0 + seq,
            None,
            () if usable else ("rtms_train",),
            PhaseInfo(phase, cue, not usable),
        )
        scores = None
        if usable:
            q = float(np.clip(p + rng.normal(0, 0.05), 0.01, 0.99))
            one = np.array([q])
            scores = Scores(one, one, one, np.log(one / (1 - one)), one, one, np.zeros((1, 2)))
        smoothed = scoring.add(window, scores)
        message = score_message(
            ident,
            window,
            scores,
            smoothed,
            {},
            eeg_channels=(),
            pair_names=[],
            estimate=scoring.estimate(),
        )
        lines.append(json.dumps(message))
    path = folder / "room2" / f"{session}_20261202T100000Z.scores.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


def test_the_report_shows_trajectory_parts_phases_quality_and_pre_against_post(tmp_path, capsys):
    pre, post = write_log(tmp_path, "P9-pre", 0.8), write_log(tmp_path, "P9-post", 0.3)
    out = tmp_path / "report.html"
    assert main(["report", str(pre), str(post), "--out", str(out)]) == 0
    assert "2 session(s), 150 windows" in capsys.readouterr().out
    page = out.read_text()
    assert "<script" not in page, "self-contained: no script, no network"
    assert page.count("<svg") == 4, "a trajectory and a quality chart per session"
    for needed in (
        "Session room2/P9-pre",
        "Session room2/P9-post",
        "Pre against post treatment",
        "not a medical device",
        "neuroclip-default",
        "drug cues",
        "1 rTMS train(s)",
        "inter_train · drug cue",
    ):
        assert needed in page, needed
    records = {r.session: r for r in read_logs([pre, post])}
    assert records["P9-pre"].final_estimate()["probability"] > 0.7
    assert records["P9-post"].final_estimate()["probability"] < 0.4
    assert set(records["P9-pre"].part_estimates()) == {"baseline", "cue_drug"}


def test_the_dashboard_finds_a_sessions_logs_and_refuses_odd_ids(tmp_path):
    write_log(tmp_path, "P9-pre", 0.6)
    reports = SessionReports(tmp_path)
    assert reports.available("room2", "P9-pre") and not reports.available("room2", "P9-post")
    assert not reports.available("..", "P9-pre"), "ids are plain tokens, never paths"
    assert not SessionReports(None).available("room2", "P9-pre")
    assert "Session room2/P9-pre" in build_report(reports.logs("room2", "P9-pre"), (0.1, 0.5))


@pytest.mark.parametrize("content", [None, "not json\n", '{"schema": "other"}\n'])
def test_a_missing_or_foreign_log_is_refused_in_one_line(tmp_path, capsys, content):
    path = tmp_path / "x.scores.jsonl"
    if content is not None:
        path.write_text(content)
    assert main(["report", str(path), "--out", str(tmp_path / "r.html")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("neuroclip report: error:") and "Traceback" not in err
    assert not (tmp_path / "r.html").exists()
