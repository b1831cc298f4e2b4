"""When the page extends its score figure and when it redraws it (pure, over a real store)."""

from __future__ import annotations

import json

from dashboard.app import REDRAW_AFTER, score_update
from dashboard.figures import SCORE_TRACES
from dashboard.history import ScoreHistory
from dashboard.store import SnapshotStore

PREFIX = "neuroclip/v1/room1/S7"


def _publish(store: SnapshotStore, seqs) -> None:
    for seq in seqs:
        store.ingest(
            f"{PREFIX}/score",
            json.dumps(
                {
                    "schema": "neuroclip.score/1",
                    "seq": seq,
                    "window": {"start": seq, "end": seq + 10.0},
                    "usable": True,
                    "score": 0.5,
                    "interval": [0.4, 0.6],
                    "smoothed": 0.5,
                    "phase": "baseline",
                    "cue": None,
                    "emitted_unix": 1e9 + seq,
                }
            ),
        )


def _status(store: SnapshotStore, band) -> None:
    message = {"schema": "neuroclip.status/1", "state": "online", "reference": {"hc_band": band}}
    store.ingest(f"{PREFIX}/status", json.dumps(message))


def test_a_new_page_gets_a_figure_then_only_extensions():
    store = SnapshotStore()
    _status(store, [0.0, 0.4])
    _publish(store, range(5))
    figure, extension, state = score_update(store, "room1/S7", None)
    assert figure is not None and extension is None
    assert state["seq"] == 4 and state["band"] == [0.0, 0.4] and state["drawn"] == 0
    assert score_update(store, "room1/S7", state) == (None, None, None), "nothing new"
    _publish(store, range(5, 8))
    figure, (data, _, _), state = score_update(store, "room1/S7", state)
    assert figure is None and len(data["x"][SCORE_TRACES.index("score")]) == 3
    assert state["seq"] == 7 and state["drawn"] == 3


def test_a_new_band_a_new_session_or_a_long_append_redraws():
    store = SnapshotStore()
    _publish(store, range(3))
    _, _, state = score_update(store, "room1/S7", None)
    assert state["band"] is None
    _status(store, [0.0, 0.4])
    figure, _, state = score_update(store, "room1/S7", state)
    assert figure is not None, "the band arrived"
    figure, _, _ = score_update(store, "room1/S7", {**state, "key": "room2/S1"})
    assert figure is not None, "another session was selected"
    _publish(store, [3])
    figure, extension, _ = score_update(store, "room1/S7", {**state, "drawn": REDRAW_AFTER + 1})
    assert figure is not None and extension is None


def test_a_page_that_missed_decimated_points_is_redrawn():
    store = SnapshotStore()
    _publish(store, [0])
    _, _, state = score_update(store, "room1/S7", None)
    recent = ScoreHistory().recent
    _publish(store, range(1, recent + 50))  # the page slept through more than `recent`
    figure, extension, state = score_update(store, "room1/S7", state)
    assert figure is not None and extension is None and state["seq"] == recent + 49
    assert score_update(store, None, None) == (None, None, None)
    assert score_update(store, "room9/none", None) == (None, None, None)
