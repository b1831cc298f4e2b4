"""Stream one simulated subject as real LSL outlets (EEG, NIRS, Markers), in real time.

The EEG and NIRS outlets carry a last channel labelled ``counter``: the sample index since
the stream started (exact in float32 up to 2**24 samples, 9.3 hours of EEG at 500 Hz), so a
reader can prove that nothing was lost or duplicated. Timestamps are explicit: sample ``k``
of a stream is stamped ``t_start + k / rate`` on the LSL clock, and each marker at its onset.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from models.simulation.config import SimulationConfig
from models.simulation.montage import NIRS_WAVELENGTHS, nirs_pairs
from models.simulation.session import SessionSimulator
from models.simulation.subject import draw_subject

logger = logging.getLogger(__name__)


@dataclass
class StreamTotals:
    """What was pushed, for the closing line and for tests."""

    eeg_samples: int = 0
    nirs_samples: int = 0
    markers: int = 0


def stream_info(
    pylsl, name: str, stype: str, sfreq: float, source_id: str, channels: list[dict[str, str]]
):
    """A float32 StreamInfo whose desc lists ``channels`` plus the ``counter`` channel."""
    info = pylsl.StreamInfo(name, stype, len(channels) + 1, sfreq, pylsl.cf_float32, source_id)
    chans = info.desc().append_child("channels")
    for fields in [*channels, {"label": "counter", "unit": "samples", "type": "MISC"}]:
        ch = chans.append_child("channel")
        for key, value in fields.items():
            ch.append_child_value(key, value)
    info.desc().append_child("acquisition").append_child_value(
        "manufacturer", "NeuroCLIP simulator"
    )
    return info


def _eeg_info(pylsl, cfg: SimulationConfig, names: tuple[str, ...]):
    channels = [{"label": n, "unit": "microvolts", "type": "EEG"} for n in names]
    live = cfg.live
    return stream_info(
        pylsl, live.eeg_name, "EEG", cfg.eeg_sfreq, f"{live.source_prefix}-eeg", channels
    )


def _nirs_info(pylsl, cfg: SimulationConfig, names: tuple[str, ...], distances: np.ndarray):
    channels = [
        {
            "label": n,
            "unit": "a.u.",
            "type": "nirs_cw_amplitude",
            "wavelength": n.split(" ")[1],
            "distance": f"{d:.6f}",
        }
        for n, d in zip(names, distances, strict=True)
    ]
    live = cfg.live
    info = stream_info(
        pylsl, live.nirs_name, "NIRS", cfg.nirs_sfreq, f"{live.source_prefix}-nirs", channels
    )
    probe = info.desc().append_child("probe")
    probe.append_child_value("wavelengths", " ".join(f"{w:g}" for w in NIRS_WAVELENGTHS))
    probe.append_child_value("regions", " ".join(f"{p.name}:{p.region}" for p in nirs_pairs()))
    return info


def stream_live(
    cfg: SimulationConfig,
    duration_s: float | None = None,
    on_start: Callable[[str], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> StreamTotals:
    """Push one synthetic subject to three LSL outlets until ``duration_s`` has passed."""
    import pylsl

    live = cfg.live
    duration = float(duration_s if duration_s is not None else live.duration_s)
    rng = np.random.default_rng(live.seed)
    subject = draw_subject("live", live.group, rng, cfg, severity=live.severity)
    sim = SessionSimulator(subject, "pre", duration, cfg, with_rtms_block=live.rtms)
    eeg_out = pylsl.StreamOutlet(_eeg_info(pylsl, cfg, sim.eeg_channels), 50, 360)
    nirs_out = pylsl.StreamOutlet(
        _nirs_info(pylsl, cfg, sim.nirs_channels, sim.nirs_distances), 5, 360
    )
    marker_info = pylsl.StreamInfo(
        live.markers_name,
        "Markers",
        1,
        pylsl.IRREGULAR_RATE,
        pylsl.cf_string,
        f"{live.source_prefix}-markers",
    )
    marker_out = pylsl.StreamOutlet(marker_info)
    totals = StreamTotals()
    if live.wait_for_consumer_s > 0:
        deadline = time.monotonic() + live.wait_for_consumer_s
        for outlet in (eeg_out, nirs_out, marker_out):
            if not outlet.wait_for_consumers(max(0.0, deadline - time.monotonic())):
                logger.warning(
                    "no reader connected within %.0f s; streaming anyway", live.wait_for_consumer_s
                )
                break
    if on_start:
        on_start(
            f"streaming {live.eeg_name} (EEG {cfg.eeg_sfreq:g} Hz), {live.nirs_name} "
            f"(NIRS {cfg.nirs_sfreq:g} Hz) and {live.markers_name} for {duration:g} s"
        )
    eeg_pending = np.zeros((0, len(sim.eeg_channels)))
    nirs_pending = np.zeros((0, len(sim.nirs_channels)))
    events = list(sim.events)
    t_start = pylsl.local_clock() + 0.05
    n_eeg_total = round(duration * cfg.eeg_sfreq)
    n_nirs_total = round(duration * cfg.nirs_sfreq)
    period = live.chunk_ms / 1000.0
    try:
        while totals.eeg_samples < n_eeg_total or totals.nirs_samples < n_nirs_total:
            if should_stop is not None and should_stop():
                break
            elapsed = pylsl.local_clock() - t_start
            due_eeg = min(n_eeg_total, int(elapsed * cfg.eeg_sfreq))
            due_nirs = min(n_nirs_total, int(elapsed * cfg.nirs_sfreq))
            while (
                totals.eeg_samples + len(eeg_pending) < due_eeg
                or totals.nirs_samples + len(nirs_pending) < due_nirs
            ):
                chunk = sim.next_seconds(1)
                eeg_pending = np.vstack([eeg_pending, chunk.eeg])
                nirs_pending = np.vstack([nirs_pending, chunk.nirs])
            eeg_pending = _push(
                eeg_out,
                eeg_pending,
                due_eeg - totals.eeg_samples,
                totals.eeg_samples,
                t_start,
                cfg.eeg_sfreq,
            )
            totals.eeg_samples = max(totals.eeg_samples, due_eeg)
            nirs_pending = _push(
                nirs_out,
                nirs_pending,
                due_nirs - totals.nirs_samples,
                totals.nirs_samples,
                t_start,
                cfg.nirs_sfreq,
            )
            totals.nirs_samples = max(totals.nirs_samples, due_nirs)
            while events and events[0].onset <= elapsed:
                event = events.pop(0)
                marker_out.push_sample([event.label], t_start + event.onset)
                totals.markers += 1
            time.sleep(max(0.0, period - ((pylsl.local_clock() - t_start) - elapsed)))
    finally:
        # give consumers a moment to drain before the outlets disappear
        time.sleep(0.5)
        del eeg_out, nirs_out, marker_out
    return totals


def _push(
    outlet, pending: np.ndarray, n: int, first_index: int, t_start: float, sfreq: float
) -> np.ndarray:
    if n <= 0:
        return pending
    block = pending[:n]
    counter = np.arange(first_index, first_index + n, dtype=float)[:, None]
    stamps = t_start + counter[:, 0] / sfreq
    data = np.hstack([block, counter]).astype(np.float32)
    outlet.push_chunk(data, stamps.tolist())
    return pending[n:]
