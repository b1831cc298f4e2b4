"""LSL outlets as an acquisition system offers them: signal streams with channel metadata
and a ``counter`` channel, and a string marker stream. Used by the replay and the simulator.

A signal outlet carries float32 samples whose last channel, ``counter``, is the sample index
since the stream started (exact in float32 up to 2**24 samples), so a reader can prove that
nothing was lost or duplicated.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

logger = logging.getLogger(__name__)


def stream_info(pylsl, name: str, stype: str, sfreq: float, source_id: str, channels: list[dict]):
    """A float32 StreamInfo whose desc lists ``channels`` plus the ``counter`` channel."""
    info = pylsl.StreamInfo(name, stype, len(channels) + 1, sfreq, pylsl.cf_float32, source_id)
    chans = info.desc().append_child("channels")
    for fields in [*channels, {"label": "counter", "unit": "samples", "type": "MISC"}]:
        ch = chans.append_child("channel")
        for key, value in fields.items():
            if isinstance(value, dict):  # a nested element, e.g. location/X,Y,Z
                child = ch.append_child(key)
                for sub_key, sub_value in value.items():
                    child.append_child_value(sub_key, sub_value)
            else:
                ch.append_child_value(key, value)
    info.desc().append_child("acquisition").append_child_value(
        "manufacturer", "NeuroCLIP simulator"
    )
    return info


def signal_outlet(
    pylsl,
    name: str,
    stype: str,
    sfreq: float,
    source_id: str,
    channels: list[dict[str, str]],
    max_buffered_s: int = 360,
):
    """A signal outlet (see :func:`stream_info`) sending chunks of about 0.1 s."""
    info = stream_info(pylsl, name, stype, sfreq, source_id, channels)
    return pylsl.StreamOutlet(info, max(1, round(sfreq / 10)), max_buffered_s)


def marker_outlet(pylsl, name: str, source_id: str):
    """An irregular string outlet of one channel, for event markers."""
    info = pylsl.StreamInfo(name, "Markers", 1, pylsl.IRREGULAR_RATE, pylsl.cf_string, source_id)
    return pylsl.StreamOutlet(info)


SETTLE_S = 0.5
"""After the first reader connects, readers that were already looking (a monitor and a
recorder side by side) get this long to connect too, so all of them see the first sample."""
WAIT_SLICE_S = 0.25
"""While waiting for readers, how often a stop asked for is looked at."""


def wait_for_consumers(
    outlets: list, timeout_s: float, should_stop: Callable[[], bool] | None = None
) -> bool:
    """Wait up to ``timeout_s`` in all for a reader on every outlet, then :data:`SETTLE_S`
    for the others; warn if an outlet has none. ``should_stop`` is asked every
    :data:`WAIT_SLICE_S`: a stop asked for ends the wait (``False``)."""
    if timeout_s <= 0:
        return True
    deadline = time.monotonic() + timeout_s
    for outlet in outlets:
        while not outlet.wait_for_consumers(
            max(0.0, min(WAIT_SLICE_S, deadline - time.monotonic()))
        ):
            if should_stop is not None and should_stop():
                return False
            if time.monotonic() >= deadline:
                logger.warning("no reader connected within %.0f s; sending anyway", timeout_s)
                return False
    time.sleep(SETTLE_S)
    return True
