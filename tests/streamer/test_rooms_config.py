"""Many rooms in one process, without processes or sockets: the rooms file and the engine.

The rooms file gives one monitor configuration per room (shared keys, then the room's own,
then the environment and the CLI's flags) and refuses what would make two rooms collide.
The shared inference engine batches windows that are asked for together into one ONNX
Runtime call and gives every window the scores it gets alone.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import yaml

from contract.errors import ConfigError
from models.bundle import DEFAULT_BUNDLE, load_bundle
from streamer.inference import InferenceEngine
from streamer.rooms import is_rooms_file, load_rooms
from tests.conftest import REPO


def _rooms_file(tmp_path: Path, data: dict) -> Path:
    path = tmp_path / "rooms.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _room(i: int, **extra) -> dict:
    return {
        "site": f"room{i}",
        "session": f"S{i:03d}",
        "streams": {"eeg": {"name": f"R{i}-EEG"}, "nirs": {"name": f"R{i}-NIRS"}},
        **extra,
    }


def test_the_committed_rooms_file_gives_each_room_the_shared_keys_and_its_own():
    path = REPO / "configs" / "rooms.yaml"
    assert is_rooms_file(path) and not is_rooms_file(REPO / "configs" / "monitor.yaml")
    rooms = load_rooms(path, environ={})
    assert [(r.site, r.session) for r in rooms] == [("room1", "S001"), ("room2", "S002")]
    assert [r.streams.eeg.name for r in rooms] == ["Room1-EEG", "Room2-EEG"]
    assert {r.streams.resolve_timeout_s for r in rooms} == {60.0}  # shared
    assert {r.streams.stale_after_s for r in rooms} == {2.0}  # the embedded default


def test_a_rooms_own_keys_win_over_the_shared_ones_and_flags_apply_to_every_room(tmp_path):
    path = _rooms_file(
        tmp_path,
        {
            "windows": {"hop_s": 2.0},
            "rooms": [_room(1), _room(2, windows={"hop_s": 1.0})],
        },
    )
    rooms = load_rooms(
        path,
        environ={"NEUROCLIP_MONITOR__MQTT__PORT": "1999"},
        overrides={"duration_s": 30.0},
    )
    assert [r.windows.hop_s for r in rooms] == [2.0, 1.0]
    assert {r.mqtt.port for r in rooms} == {1999}
    assert {r.duration_s for r in rooms} == {30.0}


@pytest.mark.parametrize(
    ("rooms", "words"),
    [
        ([], "non-empty list"),
        (["room1"], "room 1 must be a mapping"),
        ([_room(1), _room(2, model={"threads": 2})], "room 2 sets 'model'"),
        ([_room(1), {**_room(2), "site": "room1", "session": "S001"}], "rooms 1 and 2"),
        ([_room(1), {**_room(2), "streams": _room(1)["streams"]}], "eeg stream"),
        ([_room(1), _room(2, windows={"hop_s": -1})], "room 2"),
        ([_room(1), _room(2, site="bad/site")], "room 2"),
    ],
)
def test_rooms_that_would_collide_or_are_malformed_are_refused_by_number(tmp_path, rooms, words):
    path = _rooms_file(tmp_path, {"rooms": rooms})
    with pytest.raises(ConfigError) as info:
        load_rooms(path, environ={})
    assert words in str(info.value)
    assert info.value.fix


def test_a_password_in_a_room_is_refused_like_one_in_a_file(tmp_path):
    path = _rooms_file(tmp_path, {"rooms": [_room(1, mqtt={"password": "hunter2"})]})
    with pytest.raises(ConfigError) as info:
        load_rooms(path, environ={})
    assert "secrets are never read" in str(info.value) and "hunter2" not in str(info.value)


def _windows(scorer, n: int, seed: int = 0) -> tuple[list, list[str]]:
    """``n`` windows of random model input shaped as the bundle expects."""
    rng = np.random.default_rng(seed)
    zero = scorer.zero_feeds()
    names = list(scorer.bundle.meta["features"]["names"])

    def shaped(key: str) -> np.ndarray | None:
        return rng.standard_normal(zero[key].shape[1:]).astype(np.float32) if key in zero else None

    windows = [
        SimpleNamespace(
            eeg=shaped("eeg"), nirs=shaped("nirs"), context=shaped("context"), features=None
        )
        for _ in range(n)
    ]
    for w in windows:
        w.features = rng.standard_normal(len(names)).astype(np.float32)
    return windows, names


def test_windows_asked_for_together_go_in_one_call_and_score_as_alone():
    bundle = load_bundle(DEFAULT_BUNDLE)

    async def scenario():
        async with InferenceEngine(bundle, "cpu") as engine:
            windows, names = _windows(engine.scorer, 9)
            alone = [(await engine.score(w, names))[0] for w in windows]
            assert (engine.batches.calls, engine.batches.largest) == (9, 1)
            together = await asyncio.gather(*(engine.score(w, names) for w in windows))
            return engine.batches, alone, [scores for scores, _ in together]

    batches, alone, together = asyncio.run(scenario())
    assert batches.calls == 10 and batches.largest == 9, batches
    for a, b in zip(alone, together, strict=True):
        np.testing.assert_allclose(b.probability, a.probability, rtol=0, atol=1e-6)
        np.testing.assert_allclose(b.logit, a.logit, rtol=0, atol=1e-5)
        assert b.probability.shape == (1,)


def test_windows_asked_for_while_a_batch_runs_go_together_in_the_next():
    bundle = load_bundle(DEFAULT_BUNDLE)

    async def scenario():
        async with InferenceEngine(bundle, "cpu", max_batch=4) as engine:
            windows, names = _windows(engine.scorer, 10, seed=1)
            first = asyncio.ensure_future(engine.score(windows[0], names))
            await asyncio.sleep(0)  # the first batch starts with one window
            rest = [asyncio.ensure_future(engine.score(w, names)) for w in windows[1:]]
            await asyncio.gather(first, *rest)
            return engine.batches

    batches = asyncio.run(scenario())
    # 1, then the other 9 at most 4 at a time
    assert batches.windows == 10 and batches.largest == 4 and batches.calls == 4, batches


def test_rooms_get_grid_phases_spread_over_the_hop_unless_they_set_one(tmp_path):
    from streamer.rooms import spread_phases

    path = _rooms_file(
        tmp_path,
        {
            "rooms": [
                _room(1),
                _room(2, windows={"hop_s": 1.0}),
                _room(3, windows={"phase_s": 0.25}),
                _room(4),
            ]
        },
    )
    rooms = spread_phases(load_rooms(path, environ={}), bundle_hop_s=2.0)
    assert [r.windows.phase_s for r in rooms] == [0.0, 0.25, 0.25, 1.5]
