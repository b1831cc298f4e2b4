"""The dashboard's store and history: pure functions of the broker's messages."""

from __future__ import annotations

import json

import jsonschema

from contract.messages import SCORE_SCHEMA
from dashboard.history import ScoreHistory, ScorePoint
from dashboard.store import SnapshotStore


def _score(seq: int, usable: bool = True) -> dict:
    message = {
        "schema": "neuroclip.score/2",
        "site": "room1",
        "session": "S7",
        "seq": seq,
        "window": {"start": 100.0 + seq, "end": 110.0 + seq},
        "usable": usable,
        "score": 0.4 if usable else None,
        "interval": [0.3, 0.6] if usable else None,
        "distance_hc": 0.2 if usable else None,
        "distance_ma": 0.5 if usable else None,
        "smoothed": 0.41 if usable else None,
        "quality": {
            "usable": usable,
            "reasons": [] if usable else ["rtms_train"],
            "eeg": None,
            "nirs": None,
        },
        "phase": "baseline",
        "cue": None,
        "model": {"name": "m", "sha256": "a" * 64},
        "latency_ms": {k: 1.0 for k in ("ingest", "preprocess", "inference", "publish", "total")},
        "estimate": None,
        "emitted_unix": 1.0,
    }
    jsonschema.validate(message, SCORE_SCHEMA)  # the fixture is what the monitor sends
    return message


def _point(seq: int) -> ScorePoint:
    return ScorePoint(float(seq), seq, 0.5, 0.4, 0.6, 0.5, True, "baseline", None)


def test_a_four_hour_history_stays_bounded_and_keeps_every_window_counted():
    history = ScoreHistory(recent=1800, max_older=1200)
    for seq in range(14_400):
        history.add(_point(seq))
    points = history.points()
    assert len(points) <= 1800 + 1200
    assert history.count == 14_400 and sum(p.weight for p in points) == 14_400
    ends = [p.t_end for p in points]
    assert ends == sorted(ends) and ends[-1] == 14_399.0
    assert all(p.weight == 1 for p in points[-1800:]), "recent windows stay at full resolution"


def test_duplicates_from_qos1_are_ignored_and_since_gives_only_new_points():
    history = ScoreHistory(recent=10, max_older=4)
    for seq in (0, 1, 2, 2, 1, 3):
        history.add(_point(seq))
    assert [p.seq for p in history.points()] == [0, 1, 2, 3]
    assert [p.seq for p in history.since(1)] == [2, 3]


def test_the_store_folds_messages_per_session_and_ignores_garbage():
    store = SnapshotStore()
    prefix = "neuroclip/v1/room1/S7"
    status = {"schema": "neuroclip.status/1", "state": "online"}
    assert store.ingest(f"{prefix}/status", json.dumps(status))
    for seq in range(5):
        assert store.ingest(f"{prefix}/score", json.dumps(_score(seq, usable=seq != 2)))
    assert not store.ingest(f"{prefix}/score", json.dumps(_score(4)))  # a duplicate
    events = [("rtms/train_start", 120.0), ("rtms/train_end", 124.0), ("cue/drug", 130.0)]
    for label, t in events:
        event = {"schema": "neuroclip.event/1", "label": label, "time": t}
        store.ingest(f"{prefix}/event", json.dumps(event))
    for topic, payload in (
        (f"{prefix}/score", b"not json"),
        (f"{prefix}/score", json.dumps({"schema": "other/1"})),
        ("neuroclip/v1/room1/S7/unknown", json.dumps(status)),
        ("elsewhere/room1/S7/score", json.dumps(_score(9))),
    ):
        assert not store.ingest(topic, payload)
    assert store.ignored == 4
    [row] = store.sessions()
    assert row["online"] and row["windows"] == 5 and row["key"] == "room1/S7"
    view = store.session("room1/S7")
    assert [p.usable for p in view.history.points()] == [True, True, False, True, True]
    assert view.trains == [[120.0, 124.0]] and view.cues == [(130.0, "drug")]
    store.ingest(f"{prefix}/status", json.dumps({**status, "state": "offline"}))
    assert not store.sessions()[0]["online"]
    assert view.online, "a copy handed to a callback does not change under it"


def test_ids_that_are_not_plain_tokens_are_ignored():
    store = SnapshotStore()
    bad = json.dumps(_score(0))
    for topic in ("neuroclip/v1/room 1/S7/score", "neuroclip/v1/room1/Jane Doe/score"):
        assert not store.ingest(topic, bad)
    assert store.sessions() == [] and store.ignored == 2


def test_a_delta_gives_what_a_page_needs_to_extend_its_figure():
    store = SnapshotStore()
    prefix = "neuroclip/v1/room1/S7"
    status = {"schema": "neuroclip.status/1", "state": "online", "reference": {"hc_band": [0, 0.4]}}
    store.ingest(f"{prefix}/status", json.dumps({**status, "windows": {"emitted": 42}}))
    for seq in range(4):
        store.ingest(f"{prefix}/score", json.dumps({**_score(seq), "emitted_unix": 1000.0 + seq}))
    for label, t in (("rtms/train_start", 120.0), ("rtms/train_end", 124.0)):
        store.ingest(
            f"{prefix}/event",
            json.dumps({"schema": "neuroclip.event/1", "label": label, "time": t}),
        )
    store.ingest(
        f"{prefix}/event",
        json.dumps({"schema": "neuroclip.event/1", "label": "rtms/train_start", "time": 150.0}),
    )
    delta = store.delta("room1/S7", 1)
    assert [p.seq for p in delta.points] == [2, 3]
    assert delta.first_recent_seq == 0
    assert delta.closed_trains == [(120.0, 124.0)], "an open train is not drawn yet"
    assert delta.hc_band == (0.0, 0.4)
    # the first score fixes the wall clock: emitted_unix - window end
    assert delta.clock_offset == 1000.0 - 110.0
    assert store.delta("room1/none", 0) is None
    [row] = store.sessions()
    assert row["windows"] == 42, "the monitor's own count, not what this page saw"
    assert row["last_score"] == 0.4 and row["phase"] == "baseline"


def test_version_1_scores_and_summaries_from_older_monitors_are_still_read():
    store = SnapshotStore()
    prefix = "neuroclip/v1/room1/OLD"
    old = {k: v for k, v in _score(0).items() if k != "estimate"}
    assert store.ingest(f"{prefix}/score", json.dumps({**old, "schema": "neuroclip.score/1"}))
    summary = {"schema": "neuroclip.summary/1", "baseline_mean": 0.4, "recent_mean": 0.5}
    assert store.ingest(f"{prefix}/summary", json.dumps(summary))
    assert not store.ingest(f"{prefix}/score", json.dumps({**old, "schema": "neuroclip.score/9"}))
    view = store.session("room1/OLD")
    assert view.history.count == 1 and view.estimate is None and view.summary == summary
