"""Panels are pure functions of messages; what they say is what an operator reads."""

from __future__ import annotations

import base64

import pytest
from flask import Flask

from contract.errors import ConfigError
from contract.settings import load_config
from dashboard import panels
from dashboard.auth import require_basic_auth
from dashboard.config import DashboardConfig
from dashboard.feed import FeedSnapshot
from neuroclip.broker_url import broker_overrides
from tests.conftest import REPO


def _text(component) -> str:
    """Every string inside a Dash component tree."""
    if isinstance(component, (str, int, float)):
        return str(component)
    if isinstance(component, (list, tuple)):
        return " ".join(_text(c) for c in component)
    children = getattr(component, "children", None)
    return "" if children is None else _text(children)


FEED_UP = FeedSnapshot("mqtt://127.0.0.1:1883", True, 0.0, None, 10, 0)


def test_the_banner_is_hidden_while_connected_and_says_why_when_not():
    assert panels.broker_banner(FEED_UP) == ("", "banner hidden")
    down = FeedSnapshot("mqtt://b:1883", False, 0.0, "Not authorized", 10, 0)
    text, css = panels.broker_banner(down)
    assert "mqtt://b:1883 unreachable" in text and "Not authorized" in text and "alert" in css


def test_the_quality_panel_names_bad_channels_and_pairs():
    score = {
        "seq": 7,
        "quality": {
            "usable": False,
            "reasons": ["eeg_quality"],
            "eeg": {"bad_fraction": 0.25, "bad_channels": ["Fp1", "T7"]},
            "nirs": {"good_fraction": 0.5, "sci_median": 0.41, "bad_pairs": ["S1_D1"]},
        },
    }
    quality = {
        "eeg": {"channels": ["Fp1", "Fz", "T7"], "flags": {"flat": ["T7"], "noisy": ["Fp1"]}}
    }
    text = _text(panels.quality_panel(score, quality))
    assert "Window 8: unusable: eeg_quality" in text, "windows count from 1, as on the page"
    assert "25 % of channels bad: Fp1, T7" in text
    assert "50 % of pairs good, median scalp coupling index 0.41; poor coupling: S1_D1" in text
    cells = panels._eeg_status(quality).children
    assert [(c.children, c.className, c.title) for c in cells] == [
        ("Fp1", "chan bad", "noisy"),
        ("Fz", "chan good", "good"),
        ("T7", "chan bad", "flat"),
    ]
    assert "No window" in _text(panels.quality_panel(None, None))


def test_the_quality_panel_names_the_haemoglobin_index_and_saturated_pairs():
    nirs = {
        "good_fraction": 0.75,
        "sci_median": 0.3,
        "bad_pairs": ["S5_D2", "S1_D1"],
        "index": "psp",
        "saturated_pairs": ["S5_D2"],
    }
    score = {"seq": 3, "quality": {"usable": True, "reasons": [], "eeg": None, "nirs": nirs}}
    text = _text(panels.quality_panel(score, None))
    assert "median cardiac peak power 0.30" in text
    assert "poor coupling: S1_D1; saturated or lost: S5_D2" in text


def test_the_health_panel_shows_streams_latency_and_both_brokers():
    status = {
        "state": "degraded",
        "emitted_unix": 0.0,
        "streams": {
            "eeg": {
                "connected": False,
                "stale": True,
                "age_s": 12.5,
                "rate_nominal": 500.0,
                "rate_effective": 0.0,
                "gaps": 2,
                "missing_samples": 40,
                "reconnects": 1,
                "clock_offset_ms": -0.03,
            },
        },
        "latency_ms": {"total": {"p50": 9.4, "p99": 28.4}},
        "broker": {"enabled": True, "connected": True, "queued": 3, "dropped": 0},
        "log": {"ok": False, "error": "No space left on device"},
        "model": {"name": "m", "sha256": "ab" * 32, "providers": ["CPUExecutionProvider"]},
    }
    text = _text(panels.health_panel(status, FEED_UP))
    assert "EEG stale 12.50 0.00 / 500 2 40 1 -0.03" in text
    assert "9.4" in text and "28.4" in text
    assert "3 queued" in text and "ERROR No space left on device" in text
    assert "this page's broker: connected" in text


def test_the_sessions_table_marks_state_and_selection():
    rows = [
        {
            "key": "r/S1",
            "site": "r",
            "session": "S1",
            "state": "offline",
            "windows": 3,
            "last_score": None,
            "smoothed": 0.3,
            "estimate": {"probability": 0.25, "low": 0.2, "high": 0.3, "windows": 9},
            "phase": "inter_train",
        }
    ]
    table = panels.sessions_table(rows, "r/S1")
    row = table.children[1].children[0]
    assert row.id == "session-row-r-S1" and row.className == "selected"
    assert "offline" in _text(row) and "0.25" in _text(row) and "between trains" in _text(row)
    assert row.children[1].children.href == "?session=r%2FS1", "each session links to its page"
    assert "No session" in _text(panels.sessions_table([], None))


def test_basic_auth_refuses_without_and_with_wrong_credentials():
    app = Flask("t")
    app.add_url_rule("/", "index", lambda: "page")
    require_basic_auth(app, "op", "s3cret")
    client = app.test_client()

    def get(user_pass: str | None):
        headers = {}
        if user_pass is not None:
            headers["Authorization"] = "Basic " + base64.b64encode(user_pass.encode()).decode()
        return client.get("/", headers=headers)

    assert get(None).status_code == 401 and "Basic" in get(None).headers["WWW-Authenticate"]
    assert get("op:wrong").status_code == 401 and get("other:s3cret").status_code == 401
    assert get("op:s3cret").status_code == 200
    bad = client.get("/", headers={"Authorization": "Basic !!not-base64"})
    assert bad.status_code == 401


def test_the_committed_dashboard_yaml_restates_the_defaults():
    cfg = load_config(
        DashboardConfig, REPO / "configs" / "dashboard.yaml", name="dashboard", environ={}
    )
    assert cfg == DashboardConfig()


def test_a_page_on_the_network_needs_a_password(tmp_path):
    with pytest.raises(ConfigError, match=r"http\.host"):
        load_config(
            DashboardConfig,
            None,
            name="dashboard",
            environ={"NEUROCLIP_DASHBOARD__HTTP__HOST": "0.0.0.0"},
        )
    with pytest.raises(ConfigError, match=r"auth\.password"):
        load_config(
            DashboardConfig,
            None,
            name="dashboard",
            environ={"NEUROCLIP_DASHBOARD__AUTH__USERNAME": "op"},
        )
    secret = tmp_path / "pw"
    secret.write_text("s3cret\n")
    cfg = load_config(
        DashboardConfig,
        None,
        name="dashboard",
        environ={
            "NEUROCLIP_DASHBOARD__HTTP__HOST": "0.0.0.0",
            "NEUROCLIP_DASHBOARD__AUTH__USERNAME": "op",
            "NEUROCLIP_DASHBOARD__AUTH__PASSWORD_FILE": str(secret),
        },
    )
    assert cfg.auth.credentials() == ("op", "s3cret")


def test_broker_urls_become_overrides_and_credentials_in_them_are_refused():
    assert broker_overrides("mqtts://broker.lan", "broker") == {
        "broker.host": "broker.lan",
        "broker.port": 8883,
        "broker.tls": True,
    }
    with pytest.raises(ConfigError, match="credentials"):
        broker_overrides("mqtt://u:p@host:1883", "broker")
    with pytest.raises(ConfigError, match="not a broker URL"):
        broker_overrides("http://host", "mqtt")


def _view_with(status=None, scores=(), summary=None):
    from dashboard.history import ScorePoint
    from dashboard.store import SessionView

    view = SessionView("room1", "P3-pre", status=status, summary=summary)
    for seq, message in enumerate(scores):
        view.history.add(ScorePoint(10.0 + seq, seq, 0.5, 0.4, 0.6, 0.5, True, "baseline", None))
        view.last_score = message
    return view


ESTIMATE = {"probability": 0.71, "low": 0.55, "high": 0.84, "windows": 40, "band": "near"}


@pytest.mark.parametrize(
    ("status", "scores", "expected"),
    [
        (None, (), "Waiting for the monitor to find the EEG and fNIRS streams"),
        ({"state": "starting"}, (), "Waiting for the monitor"),
        (
            {"state": "online", "emitted_unix": 1000.0, "windows": {"first_in_s": 12.0}},
            (),
            "first score is due in about 9 s",
        ),
        ({"state": "online", "windows": {"first_in_s": None}}, (), "both streams' first"),
        ({"state": "online"}, ({"seq": 0, "estimate": None, "emitted_unix": 1003.0},), "No usable"),
        ({"state": "offline"}, (), "ended without a usable window"),
    ],
)
def test_before_the_first_estimate_the_headline_says_what_it_waits_for(status, scores, expected):
    text = _text(panels.estimate_panel(_view_with(status, scores), now=1003.0))
    assert expected in text


def test_the_headline_shows_the_estimate_its_interval_band_recent_and_parts():
    score = {
        "seq": 39,
        "phase": "inter_train",
        "cue": None,
        "emitted_unix": 1000.0,
        "estimate": {
            "session": ESTIMATE,
            "recent": None,
            "part": "inter_train",
            "part_estimate": {**ESTIMATE, "windows": 3},
        },
    }
    summary = {"estimate": {"parts": {"baseline": ESTIMATE}, "hc_range": [0.1, 0.5]}}
    view = _view_with({"state": "online", "started_unix": 880.0}, [score] * 40, summary)
    view.trains.extend([[1.0, 5.0], [20.0, 24.0]])
    view.trains_planned = 10
    text = _text(panels.estimate_panel(view, now=1001.0))
    assert "0.71" in text and "95 % interval 0.55–0.84" in text
    assert "near the healthy-control range" in text and "from 40 usable windows" in text
    assert "elapsed 02:01" in text and "between trains · train 2 of 10" in text
    assert "40 windows scored" in text and "no usable window" in text  # recent: none
    # parts: the summary's, with the newest score's own part brought up to date
    parts = _text(panels.parts_table(view))
    assert "baseline 0.71 0.55–0.84 40" in parts and "between trains 0.71 0.55–0.84 3" in parts
    # no new window for a while: the page says the streams look stale
    assert "no new window for 30 s" in _text(panels.estimate_panel(view, now=1030.0))


def test_banners_for_an_unknown_session_and_a_finished_one():
    text, css = panels.session_banner(None, "room1/NOPE", ["room1/P3-pre"])
    assert "No such session: 'room1/NOPE'" in text and "room1/P3-pre" in text and "alert" in css
    stopped = {"state": "offline", "stopped": {"reason": "SIGTERM", "ended_unix": 1000.0}}
    view = _view_with({**stopped, "windows": {"emitted": 174}})
    text, css = panels.session_banner(view, None, [])
    assert "Session finished at" in text and "(SIGTERM): 174 windows scored" in text
    assert panels.session_banner(_view_with({"state": "online"}), None, [])[1] == "banner hidden"
