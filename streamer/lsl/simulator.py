"""Stream one simulated subject as real LSL outlets (EEG, NIRS, Markers), in real time.

The EEG and NIRS outlets carry a last channel labelled ``counter``: the sample index since
the stream started (exact in float32 up to 2**24 samples, 9.3 hours of EEG at 500 Hz), so a
reader can prove that nothing was lost or duplicated. Timestamps are explicit: sample ``k``
of a stream is stamped ``t_start + k / rate`` on the LSL clock, and each marker at its onset.

For rehearsals and the fault suite, ``live.speed`` runs a virtual clock faster than real
time (stamps ``speed`` simulated seconds apart per real second, as ``neuroclip replay
--speed``), ``live.*_clock_ppm`` makes a device's samples come faster or slower than its
nominal rate (stamped when they come), and ``live.faults`` injects NaN or infinite bursts,
flat, railing or saturated channels and clock jumps.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from models.simulation.config import SimulationConfig
from models.simulation.montage import NIRS_WAVELENGTHS, montage_pairs
from models.simulation.session import SessionSimulator
from models.simulation.subject import draw_subject
from models.simulation.timing import sample_count
from streamer.lsl.outlets import marker_outlet, stream_info, wait_for_consumers

logger = logging.getLogger(__name__)

EEG_CHUNK_S = 0.1
"""Transmission granularity of the EEG outlet (50 samples at 500 Hz)."""
NIRS_CHUNK_S = 0.5
"""Transmission granularity of the fNIRS outlet (5 samples at 10 Hz)."""


def chunk_samples(rate: float, seconds: float) -> int:
    """Samples in ``seconds`` at ``rate``, at least one: an outlet's chunk size in samples.

    Taken from the rate so that the granularity stays the same in time at any rate
    (2048 Hz EEG, 7.8125 Hz fNIRS), not a sample count that suits one rate.
    """
    return max(1, round(rate * seconds))


@dataclass
class StreamTotals:
    """What was pushed, for the closing line and for tests."""

    eeg_samples: int = 0
    nirs_samples: int = 0
    markers: int = 0


def _eeg_info(pylsl, cfg: SimulationConfig, names: tuple[str, ...]):
    channels = [{"label": n, "unit": "microvolts", "type": "EEG"} for n in names]
    live = cfg.live
    return stream_info(
        pylsl, live.eeg_name, "EEG", cfg.eeg_sfreq, f"{live.source_prefix}-eeg", channels
    )


def _nirs_info(pylsl, cfg: SimulationConfig, names: tuple[str, ...], distances: np.ndarray):
    """The fNIRS outlet's info: every channel (short-separation ones included when the
    montage has them) with its wavelength and source-detector ``distance`` in metres, from
    which readers tell short channels apart."""
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
    short = cfg.short_channels
    pairs = montage_pairs(short.enabled, short.distance_mm / 1000.0)
    probe.append_child_value("regions", " ".join(f"{p.name}:{p.region}" for p in pairs))
    return info


def stream_live(
    cfg: SimulationConfig,
    duration_s: float | None = None,
    on_start: Callable[[str], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    on_outlets: Callable[[str], None] | None = None,
) -> StreamTotals:
    """Push one synthetic subject to three LSL outlets until ``duration_s`` has passed.

    ``live.stage`` picks the session: ``pre``, or ``post`` (the same subject after its rTMS
    course, as the cohort writer's ``post`` session: lower severity, another cue order).
    ``on_outlets`` hears when the outlets exist (before any wait for readers), ``on_start``
    when the samples start. ``should_stop`` is asked between chunks (and while waiting for
    readers); once it says yes the stream ends early, with the totals pushed so far.
    """
    import pylsl

    live = cfg.live
    duration = float(duration_s if duration_s is not None else live.duration_s)
    rng = np.random.default_rng(live.seed)
    subject = draw_subject("live", live.group, rng, cfg, severity=live.severity)
    sim = SessionSimulator(
        subject,
        live.stage,
        duration,
        cfg,
        with_rtms_block=live.rtms,
        session_index=0 if live.stage == "pre" else 1,
    )
    eeg_out = pylsl.StreamOutlet(
        _eeg_info(pylsl, cfg, sim.eeg_channels), chunk_samples(cfg.eeg_sfreq, EEG_CHUNK_S), 360
    )
    nirs_out = pylsl.StreamOutlet(
        _nirs_info(pylsl, cfg, sim.nirs_channels, sim.nirs_distances),
        chunk_samples(cfg.nirs_sfreq, NIRS_CHUNK_S),
        360,
    )
    marker_out = marker_outlet(pylsl, live.markers_name, f"{live.source_prefix}-markers")
    totals = StreamTotals()
    if on_outlets:
        wait = live.wait_for_consumer_s
        on_outlets(
            f"outlets up: {live.eeg_name}, {live.nirs_name}, {live.markers_name}"
            + (f"; waiting up to {wait:g} s for a reader of each" if wait > 0 else "")
        )
    wait_for_consumers([eeg_out, nirs_out, marker_out], live.wait_for_consumer_s, should_stop)
    if should_stop is not None and should_stop():  # stopped while waiting for readers
        return totals
    if on_start:
        on_start(
            f"streaming {live.eeg_name} (EEG {cfg.eeg_sfreq:g} Hz), {live.nirs_name} "
            f"(NIRS {cfg.nirs_sfreq:g} Hz) and {live.markers_name} for {duration:g} s "
            f"({live.group} subject, session {live.stage}, severity {sim.severity:.2f}; "
            f"{timeline_text(sim.events)})"
        )
    eeg = _StreamClock("eeg", cfg.eeg_sfreq, live.eeg_clock_ppm, live.faults, sim.eeg_channels)
    nirs = _StreamClock("nirs", cfg.nirs_sfreq, live.nirs_clock_ppm, live.faults, sim.nirs_channels)
    eeg_pending = np.zeros((0, len(sim.eeg_channels)))
    nirs_pending = np.zeros((0, len(sim.nirs_channels)))
    events = list(sim.events)
    t_start = pylsl.local_clock() + 0.05
    n_eeg_total, n_nirs_total = eeg.total(duration), nirs.total(duration)
    period = live.chunk_ms / 1000.0
    try:
        while totals.eeg_samples < n_eeg_total or totals.nirs_samples < n_nirs_total:
            if should_stop is not None and should_stop():
                break
            elapsed_real = pylsl.local_clock() - t_start
            elapsed = elapsed_real * live.speed  # simulated seconds
            due_eeg = min(n_eeg_total, eeg.due(elapsed))
            due_nirs = min(n_nirs_total, nirs.due(elapsed))
            while (
                totals.eeg_samples + len(eeg_pending) < due_eeg
                or totals.nirs_samples + len(nirs_pending) < due_nirs
            ):
                chunk = sim.next_seconds(1)
                eeg_pending = np.vstack([eeg_pending, chunk.eeg])
                nirs_pending = np.vstack([nirs_pending, chunk.nirs])
            eeg_pending = eeg.push(eeg_out, eeg_pending, due_eeg - totals.eeg_samples, t_start)
            totals.eeg_samples = max(totals.eeg_samples, due_eeg)
            nirs_pending = nirs.push(
                nirs_out, nirs_pending, due_nirs - totals.nirs_samples, t_start
            )
            totals.nirs_samples = max(totals.nirs_samples, due_nirs)
            while events and events[0].onset <= elapsed:
                event = events.pop(0)
                marker_out.push_sample([event.label], t_start + event.onset)
                totals.markers += 1
            time.sleep(max(0.0, period - ((pylsl.local_clock() - t_start) - elapsed_real)))
    finally:
        # give consumers a moment to drain before the outlets disappear
        time.sleep(0.5)
        del eeg_out, nirs_out, marker_out
    return totals


def timeline_text(events: list) -> str:
    """The session's plan in a few words: cue blocks, and when the rTMS trains come."""
    trains = [e.onset for e in events if e.label == "rtms/train_start"]
    cues = sum(e.label.startswith("cue/") for e in events)
    text = f"{cues} cue block(s)"
    if trains:
        text += f", {len(trains)} rTMS train(s) from {trains[0]:g} s to {trains[-1]:g} s"
    return text


class _StreamClock:
    """One outlet's device: its sample clock (maybe off by ``ppm``) and its injected faults.

    Sample ``k`` is taken at simulated time ``k / (rate * (1 + ppm))`` and stamped so (plus
    any clock jump before it), as an LSL app stamping with the host clock would.
    """

    def __init__(
        self, role: str, rate: float, ppm: float, faults: tuple, channels: tuple[str, ...]
    ):
        self.rate = rate
        self.true_rate = rate * (1.0 + ppm * 1e-6)
        self.faults = [f for f in faults if f.stream == role]
        self.channels = list(channels)
        self.counter = 0
        self._levels: np.ndarray | None = None

    def due(self, elapsed_s: float) -> int:
        """Samples taken by simulated time ``elapsed_s``."""
        return int(elapsed_s * self.true_rate)

    def total(self, duration_s: float) -> int:
        """Samples in ``duration_s`` of streaming: ``round(duration_s * rate)``, as recorded
        by the BIDS writer (``int`` would lose one at 600 s of 10.1725 Hz, 6103.5 samples)."""
        return sample_count(duration_s, self.true_rate)

    def push(self, outlet, pending: np.ndarray, n: int, t_start: float) -> np.ndarray:
        """Push the next ``n`` pending samples (with counter and faults); return the rest."""
        if n <= 0:
            return pending
        block = np.array(pending[:n], dtype=float)
        index = np.arange(self.counter, self.counter + n)
        times = index / self.true_rate
        if self._levels is None:
            self._levels = np.abs(np.median(block, axis=0))
        stamps = t_start + times
        for fault in self.faults:
            if fault.kind == "clock_jump":
                stamps = stamps + np.where(times >= fault.start_s, fault.value, 0.0)
                continue
            rows = (times >= fault.start_s) & (times < fault.start_s + fault.duration_s)
            if rows.any():
                cols = self._columns(fault.channels)
                block[np.ix_(rows, cols)] = self._fault_values(fault, cols)
        data = np.hstack([block, index[:, None].astype(float)]).astype(np.float32)
        outlet.push_chunk(data, stamps.tolist())
        self.counter += n
        return pending[n:]

    def _columns(self, labels: tuple[str, ...]) -> list[int]:
        # labels were checked against the montage when the configuration was loaded
        if not labels:
            return list(range(len(self.channels)))
        return [self.channels.index(c) for c in labels]

    def _fault_values(self, fault, cols: list[int]) -> np.ndarray:
        if fault.kind == "nan":
            return np.full(len(cols), np.nan)
        if fault.kind == "inf":
            return np.full(len(cols), np.inf)
        if fault.kind == "flat":
            return np.full(len(cols), fault.value or 0.0)
        if fault.kind == "rail":
            return np.full(len(cols), 200_000.0 if fault.value is None else fault.value)
        assert fault.kind == "saturate"
        assert self._levels is not None
        return self._levels[cols] * 4.0 if fault.value is None else np.full(len(cols), fault.value)
