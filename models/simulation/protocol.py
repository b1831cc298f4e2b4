"""The session timeline: resting baseline, drug and neutral cue blocks, an optional rTMS block.

Marker names are those of DESIGN.md: ``rest``, ``cue/drug``, ``cue/neutral``,
``rtms/train_start``, ``rtms/pulse``, ``rtms/train_end``; and ``rtms/block_start trains=N``
at the start of the rTMS block, which readers that do not know it ignore.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from models.simulation.config import ProtocolConfig

BLOCK_START = "rtms/block_start"


@dataclass(frozen=True)
class Event:
    """One marker with the duration of what it starts (0 for instantaneous events)."""

    onset: float
    duration: float
    label: str


def build_timeline(
    duration_s: float, cfg: ProtocolConfig, rng: np.random.Generator, with_rtms: bool
) -> list[Event]:
    """Events of one session, sorted by onset, all ending before ``duration_s``.

    The baseline takes at most a quarter of the session; drug and neutral blocks then
    alternate in a random, balanced order; with ``with_rtms`` an rTMS block of
    ``cfg.rtms_trains`` trains (fewer in a short session) sits after the first half of the
    cue blocks, or after ``cfg.cue_blocks_before_rtms`` of them when that is set, in which
    case the blocks on each side of it are balanced and shuffled apart (a long live stream
    then reaches its trains after a few minutes, not after half of its hours).
    """
    events = [Event(0.0, 0.0, "rest")]
    t = min(cfg.baseline_s, 0.25 * duration_s)
    block = cfg.cue_block_s + cfg.rest_s
    period = cfg.rtms_train_s + cfg.rtms_iti_s
    # a short session keeps at least 60 % of its time after the baseline for cues
    n_trains = max(1, min(cfg.rtms_trains, int(0.4 * (duration_s - t) // period)))
    rtms_len = n_trains * period if with_rtms else 0.0
    n_blocks = max(0, int((duration_s - t - rtms_len) // block))
    kinds = [("cue/drug", "cue/neutral")[i % 2] for i in range(n_blocks)]
    if cfg.cue_blocks_before_rtms is None:
        rng.shuffle(kinds)
        before = n_blocks // 2
    else:
        # any prefix of the alternating list is balanced to within one block, and so is
        # the rest: shuffle the two sides apart
        before = min(cfg.cue_blocks_before_rtms, n_blocks)
        first, second = kinds[:before], kinds[before:]
        rng.shuffle(first)
        rng.shuffle(second)
        kinds = first + second
    rtms_pending = with_rtms
    for i, kind in enumerate(kinds):
        if rtms_pending and i == before:
            t = _add_rtms(events, t, cfg, n_trains)
            rtms_pending = False
        events.append(Event(t, cfg.cue_block_s, kind))
        events.append(Event(t + cfg.cue_block_s, cfg.rest_s, "rest"))
        t += block
    if rtms_pending:
        _add_rtms(events, t, cfg, n_trains)
    return sorted((e for e in events if e.onset < duration_s), key=lambda e: e.onset)


def _add_rtms(events: list[Event], t: float, cfg: ProtocolConfig, n_trains: int) -> float:
    period = 1.0 / cfg.rtms_freq_hz
    n_pulses = round(cfg.rtms_train_s * cfg.rtms_freq_hz)
    # says how many trains the block holds (the dashboard shows "train n of N")
    events.append(Event(t, 0.0, f"{BLOCK_START} trains={n_trains}"))
    for _ in range(n_trains):
        events.append(Event(t, cfg.rtms_train_s, "rtms/train_start"))
        for k in range(n_pulses):
            events.append(Event(t + k * period, 0.0, "rtms/pulse"))
        events.append(Event(t + cfg.rtms_train_s, 0.0, "rtms/train_end"))
        events.append(Event(t + cfg.rtms_train_s, cfg.rtms_iti_s, "rest"))
        t += cfg.rtms_train_s + cfg.rtms_iti_s
    return t


def intervals(events: list[Event], label: str) -> np.ndarray:
    """``(n, 2)`` start and end times of the events with ``label``."""
    rows = [(e.onset, e.onset + e.duration) for e in events if e.label == label]
    return np.asarray(rows, float).reshape(-1, 2)


def indicator(times: np.ndarray, spans: np.ndarray) -> np.ndarray:
    """1.0 where ``times`` fall inside any of ``spans``, else 0.0."""
    out = np.zeros(times.shape)
    for start, end in spans:
        out[(times >= start) & (times < end)] = 1.0
    return out
