"""Per-channel detection of saturation and signal loss in an fNIRS stream, causally.

A saturated or disconnected fNIRS channel does not look noisy, it looks wrong: NIRx
devices mark saturated samples (their files hold NaN there, MNE reads them so); without the
device's flags, the raw values of the same recording jump by factors of 20 to 1600 from one
sample to the next (``nirsport1_15_3_saturation``: |d ln I| up to 7.4, while the largest step
of any unsaturated channel in the shared real recordings is 0.8); an ADC at its ceiling
repeats the same value. A sample is *lost* when it is non-finite, when the channel's
log-intensity steps by more than :data:`JUMP_LN` from the previous sample (optical density:
the same step in OD), when it is not positive (intensity), or when the channel has repeated
one value :data:`FLAT_SAMPLES` times; after such a step, until the channel comes back within
:data:`RETURN_LN` of its level before it (or has stayed away :data:`RELOCK_S`). A lost
sample keeps the channel flagged for ``hold_s`` after it, and the fNIRS chain holds the
channel's last good value over every flagged sample (a saturation step through the 0.01 Hz
high-pass would ring for minutes).

The result is a per-channel mask, never NaN in the data: the window quality gate flags the
pairs whose channels were lost in the window (reason ``saturated``), and the window is
scored from the other pairs when enough remain.
"""

from __future__ import annotations

import numpy as np

JUMP_LN = 1.5
"""Largest plausible step of ln(intensity) between two samples (a factor of 4.5)."""
FLAT_SAMPLES = 5
"""Identical consecutive values that mean a clipped or stuck channel."""
RETURN_LN = 0.2
"""After a step, a channel is lost until ln(intensity) comes back within this of its level
before the step (22 %): a saturated plateau can sit at any level, with no step inside it."""
RELOCK_S = 30.0
"""Seconds away from its old level after which a channel's new level is taken as real (an
optode that moved stays at its new level)."""


def _since_last(events: np.ndarray, last: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Samples since the newest event at or before each sample, per channel.

    ``last`` is, per channel, how many samples before this chunk's first one the previous
    event was (``inf``: none yet). Returns the distances ``(n, n_ch)`` and the new ``last``.
    """
    n = events.shape[0]
    idx = np.arange(n, dtype=float)[:, None]
    marks = np.where(events, idx, -np.inf)
    marks = np.vstack([(-last)[None, :], marks])  # the previous event, as a negative index
    np.maximum.accumulate(marks, axis=0, out=marks)
    distance = idx - marks[1:]
    new_last = n - marks[-1] if n else last
    return distance, new_last


class SignalLossDetector:
    """Flag lost samples per channel; see the module docstring for the rules.

    Parameters
    ----------
    signal
        ``intensity``, ``od`` or ``hb``: which value rules apply (steps only make sense for
        intensity and optical density).
    sfreq
        Sampling rate, for the hold.
    hold_s
        Seconds a channel stays flagged after a lost sample.
    """

    def __init__(self, signal: str, sfreq: float, hold_s: float = 1.0):
        self.signal = signal
        self.hold = max(1, round(hold_s * sfreq))
        self.relock = max(1, round(RELOCK_S * sfreq))
        self._level: np.ndarray | None = None
        """Per channel, ln(intensity) of the last good sample (NaN before one)."""
        self._away: np.ndarray | None = None
        """Per channel, samples since it left its level (-1: at its level)."""
        self._previous: np.ndarray | None = None
        self._since_event: np.ndarray | None = None
        self._since_change: np.ndarray | None = None

    def __call__(self, raw: np.ndarray, held: np.ndarray) -> np.ndarray:
        """``(n, n_ch)`` True where a sample is lost.

        ``raw`` are the samples as received, ``held`` the same with non-finite values
        replaced by the last finite one (what the chain filters).
        """
        n, width = raw.shape
        if n == 0:  # nothing to judge, and no state to set from it
            return np.zeros((0, width), bool)
        if self._previous is None:
            self._previous = held[0].copy()
            self._since_event = np.full(width, np.inf)
            self._since_change = np.zeros(width)
            self._level = np.full(width, np.nan)
            self._away = np.full(width, -1)
        events = ~np.isfinite(raw)
        previous = np.vstack([self._previous[None, :], held])
        if self.signal == "intensity":
            events |= held <= 0
            with np.errstate(divide="ignore", invalid="ignore"):
                steps = np.abs(np.diff(np.log(np.abs(previous)), axis=0))
            events |= ~np.isfinite(steps) | (steps > JUMP_LN)
        elif self.signal == "od":
            events |= np.abs(np.diff(previous, axis=0)) > JUMP_LN
        if self.signal in ("intensity", "od"):  # steps (not flat runs) leave the level
            with np.errstate(divide="ignore", invalid="ignore"):
                level = np.log(np.abs(raw)) if self.signal == "intensity" else -raw
            events |= self._away_from_level(np.where(np.isfinite(level), level, np.nan), events)
        changed = np.diff(previous, axis=0) != 0
        run, self._since_change = _since_last(changed, self._since_change)
        events |= run >= FLAT_SAMPLES - 1
        distance, self._since_event = _since_last(events, self._since_event)
        self._previous = held[-1].copy()
        return distance < self.hold

    def _away_from_level(self, level: np.ndarray, events: np.ndarray) -> np.ndarray:
        """``(n, n_ch)`` True while a channel, after a step, has not come back within
        :data:`RETURN_LN` of its level before the step (nor stayed away :data:`RELOCK_S`).
        Sample by sample only while a channel is away or steps; otherwise one vector step."""
        n, width = level.shape
        out = np.zeros((n, width), bool)
        if not events.any() and (self._away < 0).all():
            seen = np.isfinite(level)
            last = np.where(seen, np.arange(n)[:, None], -1).max(axis=0)
            self._level = np.where(
                last >= 0, level[np.maximum(last, 0), np.arange(width)], self._level
            )
            return out
        base, away = self._level, self._away
        for i in range(n):
            value, event = level[i], events[i]
            away = np.where(event & (away < 0) & np.isfinite(base), 0, away)
            returned = (away >= 0) & ~event & (np.abs(value - base) <= RETURN_LN)
            relocked = (away >= self.relock) & np.isfinite(value) & ~event
            out[i] = (away >= 0) & ~returned & ~relocked
            away = np.where(returned | relocked, -1, np.where(away >= 0, away + 1, away))
            good = (away < 0) & ~event & np.isfinite(value)
            base = np.where(good, value, base)
        self._level, self._away = base, away
        return out
