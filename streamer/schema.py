"""The score message, ``neuroclip.score/1``: one schema for MQTT, LSL, the log and the dashboard.

:data:`SCORE_SCHEMA` is a JSON Schema (draft 2020-12) that consumers can validate against;
:func:`score_message` builds a message from a scheduled window and its scores. Nothing that
identifies a person goes in: the session id is pseudonymous, and no raw signal is included.
Numbers that do not exist (the score of an unusable window) are ``null``, never NaN.

Stage latencies (``latency_ms``): ``ingest`` from the LSL timestamp of the window's last
sample until the event loop takes its chunk (transport, the reader thread and the hand-off);
``preprocess`` the chain on that chunk, cutting and gating the window and the wait for the
scorer; ``inference`` the ONNX Runtime call through its executor; ``total`` from that last
sample's timestamp to the message being built; ``publish`` the time the *previous* message
took to reach the log, the LSL outlet and the MQTT client (a message cannot carry its own
delivery time). Windows emitted by the timer (data late or lost) have ``ingest`` and
``total`` null.
"""

from __future__ import annotations

import math
from typing import Any

from models.pipeline.phase import CUES, PHASES

SCORE_FORMAT = "neuroclip.score/1"
STATUS_FORMAT = "neuroclip.status/1"
QUALITY_FORMAT = "neuroclip.quality/1"
EVENT_FORMAT = "neuroclip.event/1"
SUMMARY_FORMAT = "neuroclip.summary/1"

_NUM_OR_NULL = {"type": ["number", "null"]}
_PROB_OR_NULL = {"type": ["number", "null"], "minimum": 0, "maximum": 1}
LATENCY_STAGES = ("ingest", "preprocess", "inference", "publish", "total")

SCORE_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": SCORE_FORMAT,
    "title": "NeuroCLIP score message",
    "type": "object",
    "additionalProperties": False,
    "required": [
        "schema",
        "site",
        "session",
        "seq",
        "window",
        "usable",
        "score",
        "interval",
        "distance_hc",
        "distance_ma",
        "smoothed",
        "quality",
        "phase",
        "cue",
        "model",
        "latency_ms",
        "emitted_unix",
    ],
    "properties": {
        "schema": {"const": SCORE_FORMAT},
        "site": {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"},
        "session": {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"},
        "seq": {"type": "integer", "minimum": 0},
        "window": {
            "type": "object",
            "additionalProperties": False,
            "required": ["start", "end"],
            "properties": {"start": {"type": "number"}, "end": {"type": "number"}},
            "description": "[start, end) on the monitor's LSL clock, in seconds",
        },
        "usable": {"type": "boolean"},
        "score": {**_PROB_OR_NULL, "description": "calibrated P(MA-like); null if unusable"},
        "interval": {
            "type": ["array", "null"],
            "items": {"type": "number", "minimum": 0, "maximum": 1},
            "minItems": 2,
            "maxItems": 2,
        },
        "distance_hc": _NUM_OR_NULL,
        "distance_ma": _NUM_OR_NULL,
        "smoothed": {**_PROB_OR_NULL, "description": "moving average of usable scores"},
        "quality": {
            "type": "object",
            "additionalProperties": False,
            "required": ["usable", "reasons", "eeg", "nirs"],
            "properties": {
                "usable": {"type": "boolean"},
                "reasons": {"type": "array", "items": {"type": "string"}},
                "eeg": {
                    "type": ["object", "null"],
                    "additionalProperties": False,
                    "required": ["bad_fraction", "bad_channels"],
                    "properties": {
                        "bad_fraction": {"type": "number", "minimum": 0, "maximum": 1},
                        "bad_channels": {"type": "array", "items": {"type": "string"}},
                    },
                },
                "nirs": {
                    "type": ["object", "null"],
                    "additionalProperties": False,
                    "required": ["good_fraction", "sci_median", "bad_pairs"],
                    "properties": {
                        "good_fraction": {"type": "number", "minimum": 0, "maximum": 1},
                        "sci_median": {"type": "number", "minimum": -1, "maximum": 1},
                        "bad_pairs": {"type": "array", "items": {"type": "string"}},
                    },
                },
            },
        },
        "phase": {"enum": list(PHASES)},
        "cue": {"enum": [*CUES, None]},
        "model": {
            "type": "object",
            "additionalProperties": False,
            "required": ["name", "sha256"],
            "properties": {
                "name": {"type": "string"},
                "sha256": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
            },
        },
        "latency_ms": {
            "type": "object",
            "additionalProperties": False,
            "required": list(LATENCY_STAGES),
            "properties": {
                stage: {"type": ["number", "null"], "minimum": 0} for stage in LATENCY_STAGES
            },
        },
        "emitted_unix": {"type": "number", "description": "wall-clock time the message was built"},
    },
}


def finite_or_none(value: float | None, digits: int = 6) -> float | None:
    """A rounded float, or ``None`` for missing, NaN or infinite values."""
    if value is None:
        return None
    value = float(value)
    return round(value, digits) if math.isfinite(value) else None


def stage_latencies(stages: dict[str, float | None]) -> dict[str, float | None]:
    """Every stage of :data:`LATENCY_STAGES`, rounded, negatives clamped to 0, NaN to null."""
    out = {}
    for stage in LATENCY_STAGES:
        value = finite_or_none(stages.get(stage), 3)
        out[stage] = None if value is None else max(0.0, value)
    return out
