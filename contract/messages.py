"""The message contract: topics, ids, message kinds and the score schema, in one place.

The monitor publishes and the dashboard (or any researcher's subscriber) reads
``<topic_root>/<site>/<session>/<kind>``, with ``kind`` one of :data:`KINDS` and a JSON
payload whose ``schema`` field names its format (:data:`FORMATS`). Site and session ids are
plain tokens (:func:`valid_id`), since they become topic levels and file names.
:data:`SCORE_SCHEMA` is a JSON Schema (draft 2020-12) that consumers can validate against;
``streamer/messages.py`` builds the messages. Nothing that
identifies a person goes in: the session id is pseudonymous, and no raw signal is included.
Numbers that do not exist (the score of an unusable window) are ``null``, never NaN.

Stage latencies (``latency_ms``), counted from the window's end (the end of its last fNIRS
sample's period, on the monitor's corrected LSL clock): ``ingest`` until the event loop took
the chunk that completed the window (the device's own delay, transport, the reader thread,
the hand-off, and any wait for the marker stream); ``preprocess`` the chain on that chunk,
cutting and gating the window and the wait for the scorer; ``inference`` the ONNX Runtime
call through its executor; ``total`` from the window's end to the message being built (the
score's age as it leaves); ``publish`` the time the *previous* message took to reach the
log, the LSL outlet and the MQTT client (a message cannot carry its own delivery time).
Windows emitted by the timer (data late or lost) have ``ingest`` and ``total`` null.
"""

from __future__ import annotations

import math
import re
from typing import Any

TOPIC_ROOT = "neuroclip/v1"
"""The default topic root; sites may choose another (:func:`check_topic_root`)."""
PHASES = ("unknown", "baseline", "rtms_train", "inter_train", "post")
"""Treatment phases, from the marker stream (see ``models/pipeline/phase.py``)."""
CUES = ("drug", "neutral")
"""Cue kinds, from ``cue/drug`` and ``cue/neutral`` markers."""
ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
ID_RULE = "1-64 letters, digits, '.', '_' or '-', starting with a letter or digit"
_ID = re.compile(ID_PATTERN)

SCORE_FORMAT = "neuroclip.score/2"
STATUS_FORMAT = "neuroclip.status/1"
QUALITY_FORMAT = "neuroclip.quality/1"
EVENT_FORMAT = "neuroclip.event/1"
SUMMARY_FORMAT = "neuroclip.summary/2"
FORMATS = {
    "score": SCORE_FORMAT,
    "status": STATUS_FORMAT,
    "quality": QUALITY_FORMAT,
    "event": EVENT_FORMAT,
    "summary": SUMMARY_FORMAT,
}
"""The payload format of each topic kind, as the monitor publishes it now."""
READABLE_FORMATS = {
    **{kind: (fmt,) for kind, fmt in FORMATS.items()},
    "score": (SCORE_FORMAT, "neuroclip.score/1"),
    "summary": (SUMMARY_FORMAT, "neuroclip.summary/1"),
}
"""Formats a consumer still reads, per kind. Version 2 of score and summary added the
session ``estimate``; version 1 (monitors and logs from before it) has none, and reads as a
session without one."""
KINDS = tuple(FORMATS)


def valid_id(value: str) -> bool:
    """Whether ``value`` may be a site or session id (:data:`ID_RULE`)."""
    return bool(_ID.match(value))


def valid_topic_root(root: str) -> bool:
    """A topic root is a plain topic: no wildcards, no leading or trailing ``/``."""
    return bool(root) and not any(c in root for c in "#+") and root[0] != "/" and root[-1] != "/"


def topic(root: str, site: str, session: str, kind: str) -> str:
    """The topic of one kind of message of one session."""
    return f"{root}/{site}/{session}/{kind}"


def parse_topic(root: str, name: str) -> tuple[str, str, str] | None:
    """``(site, session, kind)`` of a topic under ``root``, or ``None`` for anything else."""
    parts, prefix = name.split("/"), root.split("/")
    if len(parts) != len(prefix) + 3 or parts[: len(prefix)] != prefix:
        return None
    site, session, kind = parts[len(prefix) :]
    if kind not in KINDS or not valid_id(site) or not valid_id(session):
        return None
    return site, session, kind


_NUM_OR_NULL = {"type": ["number", "null"]}
_PROB_OR_NULL = {"type": ["number", "null"], "minimum": 0, "maximum": 1}
LATENCY_STAGES = ("ingest", "preprocess", "inference", "publish", "total")
ESTIMATE_PARTS = ("baseline", "cue_drug", "cue_neutral", "inter_train", "post")
"""Parts of a session with their own estimate (``models.session_estimate.ESTIMATE_GROUPS``)."""
BANDS = ("within", "near", "outside")
"""An estimate's interval against the healthy-control session range: wholly at or below the
range's top, across it (not decided), wholly above it."""
_ESTIMATE = {
    "type": ["object", "null"],
    "additionalProperties": False,
    "required": ["probability", "low", "high", "windows", "band"],
    "properties": {
        "probability": {"type": "number", "minimum": 0, "maximum": 1},
        "low": {"type": "number", "minimum": 0, "maximum": 1},
        "high": {"type": "number", "minimum": 0, "maximum": 1},
        "windows": {"type": "integer", "minimum": 1},
        "band": {"enum": [*BANDS, None]},
    },
}

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
        "estimate",
        "emitted_unix",
    ],
    "properties": {
        "schema": {"const": SCORE_FORMAT},
        "site": {"type": "string", "pattern": ID_PATTERN},
        "session": {"type": "string", "pattern": ID_PATTERN},
        "seq": {"type": "integer", "minimum": 0},
        "window": {
            "type": "object",
            "additionalProperties": False,
            "required": ["start", "end"],
            "properties": {"start": {"type": "number"}, "end": {"type": "number"}},
            "description": "[start, end) on the monitor's LSL clock, in seconds: end is where "
            "the period of the window's last fNIRS sample ends",
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
                        "index": {
                            "enum": ["sci", "psp"],
                            "description": "what sci_median holds: the scalp coupling index "
                            "(intensity, OD) or the cardiac peak power (HbO/HbR input)",
                        },
                        "saturated_pairs": {"type": "array", "items": {"type": "string"}},
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
        "estimate": {
            "type": ["object", "null"],
            "additionalProperties": False,
            "required": ["session", "recent", "part", "part_estimate"],
            "description": "the session estimate after this window (models/session_estimate.py):"
            " null until the first usable window",
            "properties": {
                "session": {**_ESTIMATE, "description": "every usable window so far"},
                "recent": {**_ESTIMATE, "description": "usable windows of the last 5 minutes"},
                "part": {
                    "enum": [*ESTIMATE_PARTS, None],
                    "description": "the part of the session this window belongs to",
                },
                "part_estimate": {**_ESTIMATE, "description": "that part's usable windows"},
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
