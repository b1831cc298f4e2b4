"""Sample grids of the simulated streams at any sampling rate, whole-numbered or not.

Sample ``k`` of a stream at ``rate`` Hz is taken at ``k / rate`` seconds from the session
start, and a recording of ``duration_s`` holds ``round(duration_s * rate)`` samples. Devices
run at rates such as 7.8125 or 10.1725 Hz, so a second does not always hold the same number
of samples: the generators advance one whole second at a time and take, in second ``s``,
the samples whose times fall in ``[s, s + 1)``. The counts use the rate as the decimal
fraction a person wrote (10.1725 is 4069/400), not its nearest binary float, so a boundary
that falls exactly on a sample (second 400 at 10.1725 Hz) is never missed by a rounding.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np

MAX_RATE_DENOMINATOR = 1_000_000
"""Rates are taken as fractions with at most this denominator (six decimals, 1/3 Hz...)."""


def exact_rate(rate: float) -> Fraction:
    """``rate`` as the simple fraction it stands for, so sample counts come out exact."""
    return Fraction(rate).limit_denominator(MAX_RATE_DENOMINATOR)


def samples_before(t_s: float, rate: float) -> int:
    """How many samples ``k / rate`` lie before ``t_s`` seconds: ``ceil(t_s * rate)``.

    Samples ``samples_before(s, rate)`` to ``samples_before(s + 1, rate) - 1`` are those of
    second ``s``; at a whole-numbered rate every second holds ``rate`` of them.
    """
    return math.ceil(Fraction(t_s) * exact_rate(rate))


def sample_count(duration_s: float, rate: float) -> int:
    """Samples in a recording of ``duration_s`` seconds: ``round(duration_s * rate)``."""
    return round(Fraction(duration_s) * exact_rate(rate))


def sample_times(first: int, n: int, rate: float) -> np.ndarray:
    """Times ``k / rate`` in seconds of the ``n`` samples from index ``first`` on."""
    return np.arange(first, first + n) / rate
