"""Session comparisons: baseline vs now, and pre vs post paired by the id convention."""

from __future__ import annotations

import pytest

from dashboard.summary import baseline_vs_now, overall_mean, pre_vs_post, treatment_stage


@pytest.mark.parametrize(
    ("session", "expected"),
    [
        ("P012-pre", ("p012", "pre")),
        ("sub-07_ses-post", ("sub-07", "post")),
        ("P012.POST", ("p012", "post")),
        ("S001", None),
        ("prepost", None),
        ("-pre", None),
    ],
)
def test_the_pre_post_naming_convention(session, expected):
    assert treatment_stage(session) == expected


def _summary(baseline, means, counts):
    return {
        "baseline_mean": baseline,
        "recent_mean": 0.5,
        "phase_means": means,
        "phase_counts": counts,
    }


def _row(site, session, summary, hc=0.1):
    return {
        "key": f"{site}/{session}",
        "site": site,
        "session": session,
        "summary": summary,
        "hc_median": hc,
    }


def test_overall_mean_weights_phases_by_their_counts():
    summary = _summary(
        None, {"baseline": 0.2, "post": 0.8, "cue": None}, {"baseline": 3, "post": 1}
    )
    assert overall_mean(summary) == pytest.approx((0.2 * 3 + 0.8) / 4)
    assert overall_mean(None) is None and overall_mean(_summary(None, {}, {})) is None


def test_baseline_vs_now_says_which_way_it_moved():
    c = baseline_vs_now(_summary(0.8, {}, {}), hc_median=0.1)
    assert (c.before, c.after, c.direction) == (0.8, 0.5, "toward")
    c = baseline_vs_now({**_summary(0.3, {}, {}), "recent_mean": 0.305}, hc_median=0.1)
    assert c.direction == "unchanged relative to"
    assert baseline_vs_now(_summary(None, {}, {}), 0.1) is None


def test_pre_and_post_of_one_patient_are_paired_across_rooms():
    rows = [
        _row("room1", "P1-pre", _summary(0.8, {"baseline": 0.8}, {"baseline": 10})),
        _row("room2", "P1-post", _summary(0.3, {"baseline": 0.3}, {"baseline": 10})),
        _row("room1", "P2-pre", _summary(0.9, {"baseline": 0.9}, {"baseline": 10})),
        _row("room1", "S9", _summary(0.1, {}, {})),
    ]
    for key in ("room1/P1-pre", "room2/P1-post"):
        c = pre_vs_post(key, rows)
        assert (c.before_name, c.after_name) == ("room1/P1-pre", "room2/P1-post")
        assert c.measure == "baseline" and c.change == pytest.approx(-0.5)
        assert c.direction == "toward"
    assert pre_vs_post("room1/P2-pre", rows) is None, "no post session yet"
    assert pre_vs_post("room1/S9", rows) is None, "not named by the convention"


def test_without_baselines_pre_vs_post_compares_every_usable_window():
    rows = [
        _row("r", "P1-pre", _summary(None, {"cue": 0.6}, {"cue": 4})),
        _row(
            "r", "P1-post", _summary(0.2, {"baseline": 0.2, "cue": 0.4}, {"baseline": 1, "cue": 1})
        ),
    ]
    c = pre_vs_post("r/P1-post", rows)
    assert c.measure == "all usable windows" and c.after == pytest.approx(0.3)


def _summary_v2(baseline: float, recent: float, session: float) -> dict:
    def e(p):
        return {"probability": p, "low": p - 0.1, "high": p + 0.1, "windows": 30, "band": None}

    return {
        "schema": "neuroclip.summary/2",
        "estimate": {
            "session": e(session),
            "recent": e(recent),
            "parts": {"baseline": e(baseline)},
            "hc_range": [0.1, 0.3],
        },
    }


def test_version_2_summaries_compare_session_estimates():
    c = baseline_vs_now(_summary_v2(0.8, 0.5, 0.6), hc_median=0.9, now={"probability": 0.45})
    assert (c.before, c.after, c.measure) == (0.8, 0.45, "session estimates")
    assert c.direction == "toward", "the estimate moved toward the healthy-control range"
    rows = [
        {"key": "s/P5-pre", "session": "P5-pre", "summary": _summary_v2(0.8, 0.7, 0.75)},
        {"key": "s/P5-post", "session": "P5-post", "summary": _summary_v2(0.4, 0.4, 0.45)},
    ]
    c = pre_vs_post("s/P5-post", rows)
    assert (c.before, c.after, c.measure) == (0.8, 0.4, "baseline estimates")
