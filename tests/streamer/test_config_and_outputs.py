"""Monitor configuration, score schema, and the outputs' behaviour when things go wrong."""

from __future__ import annotations

import asyncio
import json
import math
from pathlib import Path

import jsonschema
import pytest

from contract.errors import ConfigError
from contract.messages import SCORE_SCHEMA
from contract.settings import load_config
from streamer.config import MonitorConfig, MqttConfig
from streamer.outputs.mqtt import MqttPublisher
from streamer.outputs.session_log import SessionLog
from tests.conftest import REPO
from tests.live_parts import free_port


def test_committed_monitor_yaml_restates_the_embedded_defaults():
    from_file = load_config(
        MonitorConfig, REPO / "configs" / "monitor.yaml", name="monitor", environ={}
    )
    assert from_file == load_config(MonitorConfig, None, name="monitor", environ={})


@pytest.mark.parametrize("session", ["Jane Doe", "../etc", "", "a/b"])
def test_a_session_id_that_is_not_a_plain_token_is_refused(session):
    with pytest.raises(ConfigError, match="session"):
        load_config(MonitorConfig, None, name="monitor", environ={}, overrides={"session": session})


def test_the_password_comes_from_the_environment_and_never_from_defaults():
    cfg = load_config(
        MonitorConfig,
        None,
        name="monitor",
        environ={"NEUROCLIP_MONITOR__MQTT__PASSWORD": "s3cret"},
    )
    assert cfg.mqtt.password == "s3cret"
    assert load_config(MonitorConfig, None, name="monitor", environ={}).mqtt.password is None


def _unusable_message() -> dict:
    return {
        "schema": "neuroclip.score/2",
        "site": "lab",
        "session": "S1",
        "seq": 3,
        "window": {"start": 1.0, "end": 11.0},
        "usable": False,
        "score": None,
        "interval": None,
        "distance_hc": None,
        "distance_ma": None,
        "smoothed": None,
        "quality": {"usable": False, "reasons": ["eeg_lost"], "eeg": None, "nirs": None},
        "phase": "inter_train",
        "cue": None,
        "model": {"name": "m", "sha256": "0" * 64},
        "latency_ms": {k: None for k in ("ingest", "preprocess", "inference", "publish", "total")},
        "estimate": None,
        "emitted_unix": 1.0,
    }


def test_the_schema_accepts_an_unusable_window_and_rejects_what_breaks_the_contract():
    jsonschema.validate(_unusable_message(), SCORE_SCHEMA)
    for key, bad in (("score", 1.5), ("phase", "lunch"), ("seq", -1), ("session", "Jane Doe")):
        message = {**_unusable_message(), key: bad}
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(message, SCORE_SCHEMA)


def test_no_nan_can_be_serialised():
    from streamer.messages import dumps

    with pytest.raises(ValueError):
        dumps({**_unusable_message(), "score": math.nan})


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full (Linux)")
def test_a_full_disk_is_reported_and_lines_are_held_not_lost(tmp_path):
    async def scenario():
        log = SessionLog(Path("/dev/full"))
        async with log:
            await log.append('{"seq":0}')
            await log.append('{"seq":1}')
            return log.snapshot()

    snap = asyncio.run(scenario())
    assert snap["ok"] is False and "No space left" in snap["error"]
    assert snap["backlog"] == 2 and snap["lines"] == 0

    async def recovers():
        path = tmp_path / "log.jsonl"
        log = SessionLog(path)
        async with log:
            await log.append('{"seq":0}')
        return path.read_text()

    assert json.loads(asyncio.run(recovers())) == {"seq": 0}


def test_while_no_broker_answers_messages_queue_bounded_and_counted():
    async def scenario():
        cfg = MqttConfig(port=free_port(), queue_max=5, reconnect_max_s=0.2)
        async with MqttPublisher(cfg, "lab", "S1", b'{"state":"offline"}') as pub:
            for i in range(8):
                pub.enqueue("score", f'{{"seq":{i}}}'.encode())
            await asyncio.sleep(0.5)
            return pub.snapshot(), [m.payload for m in pub._queue]

    snap, queued = asyncio.run(scenario())
    assert snap["connected"] is False and snap["error"]
    assert snap["queued"] == 5 and snap["dropped"] == 3
    assert queued == [f'{{"seq":{i}}}'.encode() for i in range(3, 8)]  # oldest dropped, order kept
