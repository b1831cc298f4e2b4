"""The window pipeline: any chunking and any delivery jitter give the windows of one call.

Synthetic two-stream recordings at the rates real devices use (fNIRS 7.8125, 10 and 12.5 Hz;
EEG 500, 512 and 1000 Hz) go through the pipeline twice: once in a single call, as offline
scoring does, and once as a live monitor would see them, in random chunks that arrive late
by random amounts, interleaved across streams, with the markers on their own stream. Every
window must come out with the same end, the same flags and the same model input.
"""

from __future__ import annotations

import numpy as np
import pytest

from models.pipeline.grid import replay_shift
from models.pipeline.holding import HeldFeed
from models.pipeline.pipeline import WindowPipeline
from models.pipeline.recording import describe_block, recording_windows
from models.pipeline.streams import Chunk
from models.signals import Markers, NirsLayout, Recording, SignalBlock
from models.simulation.montage import EEG_CHANNELS, NIRS_WAVELENGTHS, nirs_pairs
from models.windows import SignalParams

CHANNELS = tuple(EEG_CHANNELS[:6])
WARMUP_S = 4.0


def synthetic(
    eeg_rate: float,
    nirs_rate: float,
    *,
    seconds: float = 50.0,
    t0: float = 1000.37,
    nirs_start: float = 0.0131,
    drift_ppm: float = 0.0,
    nan_at: float | None = None,
    seed: int = 0,
) -> Recording:
    """EEG noise with alpha, fNIRS intensity with a heartbeat, and a few cue markers."""
    rng = np.random.default_rng(seed)
    n_e = int(seconds * eeg_rate)
    t_e = t0 + np.arange(n_e) / eeg_rate
    eeg = 10 * rng.standard_normal((n_e, len(CHANNELS))) + 8 * np.sin(2 * np.pi * 10 * t_e)[:, None]
    pairs = nirs_pairs()[:4]
    labels = tuple(f"{p.name} {w:g}" for p in pairs for w in NIRS_WAVELENGTHS)
    n_n = int((seconds - nirs_start) * nirs_rate)
    t_n = t0 + nirs_start + np.arange(n_n) / (nirs_rate * (1 + drift_ppm * 1e-6))
    beat = 0.01 * np.sin(2 * np.pi * 1.1 * t_n)[:, None]
    slow = 0.02 * np.sin(2 * np.pi * 0.05 * t_n[:, None] + rng.uniform(0, 6, len(labels)))
    nirs = 1.0 + beat + slow + 0.001 * rng.standard_normal((n_n, len(labels)))
    if nan_at is not None:
        i = int(np.searchsorted(t_n, t0 + nan_at))
        nirs[i : i + 3, 0] = np.nan
    layout = NirsLayout.from_labels(labels, distances_m=np.full(len(labels), 0.03))
    blocks = (
        SignalBlock("eeg", "eeg", CHANNELS, ("uV",) * len(CHANNELS), eeg_rate, eeg, t_e),
        SignalBlock("nirs", "nirs", labels, ("V",) * len(labels), nirs_rate, nirs, t_n, layout),
    )
    cue_times = t0 + np.array([-2.0, 12.0, 20.0, 26.0, 34.0, 38.5])
    cue_labels = ("rest", "cue/drug", "rest", "cue/neutral", "rest", "cue/drug")
    return Recording(source="synthetic", blocks=blocks, markers=Markers(cue_times, cue_labels))  # type: ignore[arg-type]


def _pipeline(params: SignalParams) -> WindowPipeline:
    return WindowPipeline(params, CHANNELS, warmup_s=WARMUP_S)


def offline(recording: Recording, params: SignalParams, chunk_s: float = 10.0):
    """One call, as ``neuroclip score`` and training cut a recording."""
    return recording_windows(_pipeline(params), recording, chunk_s=chunk_s)


def live(recording: Recording, params: SignalParams, seed: int, held: HeldFeed | None = None):
    """As a monitor: random chunks, random delivery delays, markers on their own stream.

    ``held``: through a :class:`HeldFeed` on the returned pipeline, as the monitor feeds it
    (windows asked for only when it fed the pipeline, and by a 100 ms timer)."""
    rng = np.random.default_rng(seed)
    pipeline = held.pipeline if held is not None else _pipeline(params)
    events = []
    for block, role, most in ((recording.eeg, "eeg", 60), (recording.nirs, "nirs", 4)):
        pipeline.start(role, 1, describe_block(block, role))
        pos, arrival = 0, -np.inf
        while pos < block.n_samples:
            stop = min(block.n_samples, pos + int(rng.integers(1, most)))
            stamps = block.times[pos:stop]
            # one stream's chunks come in order (one TCP connection), each late at random
            arrival = max(arrival, float(stamps[-1]) + float(rng.uniform(0.0005, 0.04)))
            data = block.data[pos:stop].astype(np.float32).astype(np.float64)
            events.append((arrival, Chunk(role, 1, data, stamps, arrival)))
            pos = stop
    pipeline.start("markers", 1, None)
    for t, label in zip(recording.markers.times, recording.markers.labels, strict=True):
        arrival = float(t) + float(rng.uniform(0.0, 0.005))
        events.append((arrival, Chunk("markers", 1, [label], np.array([t]), arrival)))
    events.sort(key=lambda e: e[0])
    out = []
    tick = events[0][0]
    for arrival, chunk in events:
        # the marker reader came back a few ms ago
        pipeline.markers_seen(arrival - 0.006)
        if held is None or chunk.role == "markers":
            pipeline.feed(chunk)
        elif not held.add(chunk) and arrival < tick:
            continue
        if held is not None and arrival >= tick:
            tick = arrival + 0.1
            held.flush_waiting(arrival)
        out.extend(pipeline.ready(arrival))
    if held is not None:
        held.flush()  # a stream's loss flushes what is held first
    for role in ("eeg", "nirs", "markers"):  # the outlets close after their last sample
        pipeline.lost(role)
    out.extend(pipeline.ready(events[-1][0]))
    return out


def assert_same(a, b, shift: float = 0.0):
    assert len(a) == len(b) > 0
    for x, y in zip(a, b, strict=True):
        assert x.seq == y.seq
        assert x.t_end - shift == pytest.approx(y.t_end, abs=1e-6)
        assert x.reasons == y.reasons
        assert (x.window is None) == (y.window is None)
        if x.window is None:
            continue
        np.testing.assert_array_equal(x.window.eeg, y.window.eeg)
        np.testing.assert_array_equal(x.window.nirs, y.window.nirs)
        np.testing.assert_array_equal(x.window.sci, y.window.sci)
        np.testing.assert_allclose(x.window.context, y.window.context, rtol=0, atol=1e-6)
        np.testing.assert_allclose(x.window.features, y.window.features, rtol=0, atol=1e-6)


@pytest.mark.parametrize("nirs_rate", [7.8125, 10.0, 12.5])
@pytest.mark.parametrize("eeg_rate", [500.0, 512.0, 1000.0])
def test_any_chunking_and_jitter_give_the_windows_of_one_call(eeg_rate, nirs_rate):
    params = SignalParams()
    recording = synthetic(eeg_rate, nirs_rate)
    reference = offline(recording, params)
    assert_same(live(recording, params, seed=1), reference)
    assert_same(live(recording, params, seed=2), reference)
    assert_same(offline(recording, params, chunk_s=3.7), reference)
    # the grid is in LSL time: every window ends with the first fNIRS sample whose period
    # reaches k * hop, where that period ends
    for w in reference:
        k = round(w.t_end / params.windows.hop_s)
        assert 0 <= w.t_end - k * params.windows.hop_s < 1 / nirs_rate + 1e-9
    assert any(w.usable for w in reference)
    assert any(w.phase.cue == "drug" for w in reference), "the markers reach the windows"


@pytest.mark.parametrize(("eeg_rate", "nirs_rate"), [(500.0, 10.0), (1000.0, 7.8125)])
def test_chunks_held_back_and_fed_together_give_the_same_windows_with_far_fewer_calls(
    eeg_rate, nirs_rate
):
    params = SignalParams()
    recording = synthetic(eeg_rate, nirs_rate)
    reference = offline(recording, params)
    held = HeldFeed(_pipeline(params))
    assert_same(live(recording, params, seed=3, held=held), reference)
    chunks = live_chunk_count(recording, seed=3)
    assert held.fed_calls < chunks / 4, (held.fed_calls, chunks)


def live_chunk_count(recording: Recording, seed: int) -> int:
    """How many signal chunks :func:`live` delivers for ``seed``."""
    rng = np.random.default_rng(seed)
    count = 0
    for block, most in ((recording.eeg, 60), (recording.nirs, 4)):
        pos = 0
        while pos < block.n_samples:
            pos = min(block.n_samples, pos + int(rng.integers(1, most)))
            rng.uniform(0.0005, 0.04)
            count += 1
    return count


def test_a_replay_shifted_by_a_whole_hop_keeps_every_window():
    params = SignalParams()
    recording = synthetic(512.0, 7.8125)
    shift = replay_shift(float(recording.nirs.times[0]), 4.0e5 + 0.37)
    assert shift % params.windows.hop_s == 0
    moved = Recording(
        source="moved",
        blocks=tuple(
            SignalBlock(
                b.name, b.kind, b.ch_names, b.units, b.sfreq, b.data, b.times + shift, b.nirs
            )
            for b in recording.blocks
        ),
        markers=Markers(recording.markers.times + shift, recording.markers.labels),
    )
    assert_same(live(moved, params, seed=3), offline(recording, params), shift=shift)


@pytest.mark.parametrize(
    "change",
    [
        {"nan_at": 25.0},
        {"drift_ppm": 2000.0},
        {"nirs_start": 21.7},
        {"nirs_start": 125.3, "seconds": 165.0},
        {"t0": 5.0},  # markers before the first sample
    ],
    ids=[
        "nan-chunk",
        "drifting-rate",
        "streams-start-apart",
        "streams-start-minutes-apart",
        "marker-before-data",
    ],
)
def test_bad_input_gives_the_same_flags_live_and_offline(change):
    params = SignalParams()
    recording = synthetic(500.0, 7.8125, **{"seconds": 60.0, **change})
    reference = offline(recording, params)
    assert_same(live(recording, params, seed=4), reference)
    if "nan_at" in change:  # one fNIRS channel: its pair is flagged, the window still scored
        hit = [w for w in reference if w.window is not None and w.window.saturated[0]]
        assert hit and all(w.usable and not w.window.saturated[1:].any() for w in hit)
    if "drift_ppm" in change:  # windows follow the timestamps, not the nominal rate
        hop = params.windows.hop_s
        assert all(0 <= w.t_end - round(w.t_end / hop) * hop < 0.13 for w in reference)
        assert not any("nirs_misaligned" in w.reasons for w in reference)
    if "nirs_start" in change:
        assert reference[0].t_end >= recording.nirs.times[0] + WARMUP_S + params.windows.window_s


def test_a_window_is_released_by_its_last_fnirs_sample_not_the_next_one():
    params = SignalParams()
    recording = synthetic(500.0, 10.0)
    pipeline = _pipeline(params)
    eeg, nirs = recording.eeg, recording.nirs
    pipeline.start("eeg", 1, describe_block(eeg, "eeg"))
    pipeline.start("nirs", 1, describe_block(nirs, "nirs"))
    first = pipeline.grid.first_index(max(eeg.times[0], nirs.times[0]))
    grid_end = pipeline.grid.point(first)
    # the window's last fNIRS sample: the first whose period reaches the grid point
    j = int(np.searchsorted(nirs.times, grid_end - 1 / nirs.sfreq - 1e-6))
    t_end = nirs.times[j] + 1 / nirs.sfreq
    i = int(np.searchsorted(eeg.times, t_end - 0.5 / eeg.sfreq, side="right"))
    pipeline.feed(Chunk("eeg", 1, eeg.data[:i], eeg.times[:i], float(eeg.times[i - 1])))
    pipeline.feed(Chunk("nirs", 1, nirs.data[:j], nirs.times[:j], float(nirs.times[j - 1])))
    assert pipeline.ready(float(nirs.times[j - 1])) == []
    t = float(nirs.times[j])
    pipeline.feed(Chunk("nirs", 1, nirs.data[j : j + 1], nirs.times[j : j + 1], t))
    (window,) = pipeline.ready(t)  # no later sample of either stream was needed
    assert window.t_end == pytest.approx(t_end, abs=1e-9)


def test_the_warm_up_countdown_names_the_first_windows_end_and_changes_nothing():
    """``first_window_end`` (the dashboard's countdown) gives the grid point the first window
    ends on, at a real device rate, and asking it after every chunk leaves every window as
    one offline call cuts it."""
    params = SignalParams()
    recording = synthetic(500.0, 7.8125)
    pipeline = _pipeline(params)
    assert pipeline.first_window_end() is None, "no stream yet"
    for role, block in (("eeg", recording.eeg), ("nirs", recording.nirs)):
        pipeline.start(role, 1, describe_block(block, role))
    assert pipeline.first_window_end() is None, "no sample yet"
    pipeline.start("markers", 1, None)
    pipeline.feed(Chunk("markers", 1, list(recording.markers.labels), recording.markers.times, 0.0))
    pipeline.markers_seen(np.inf)
    got, due = [], []
    for start in np.arange(0.0, 50.0, 1.0):
        for block, role in ((recording.eeg, "eeg"), (recording.nirs, "nirs")):
            t0 = block.times[0]
            m = (block.times >= t0 + start) & (block.times < t0 + start + 1.0)
            if m.any():
                stamps = block.times[m]
                data = block.data[m].astype(np.float32).astype(np.float64)  # as LSL sends
                pipeline.feed(Chunk(role, 1, data, stamps, float(stamps[-1])))
            due.append(pipeline.first_window_end())
        got.extend(pipeline.ready())
    got.extend(pipeline.finish())
    want = offline(recording, params)
    assert_same(got, want)
    promised = {d for d in due if d is not None}
    assert len(promised) == 1, "one first window, announced as soon as both streams started"
    (end,) = promised
    assert end <= want[0].t_end < end + 1 / recording.nirs.sfreq + 1e-9
    assert pipeline.first_window_end() is None, "nothing to count down once windows came out"


def test_a_grid_phase_moves_every_window_end_and_live_still_equals_offline():
    params = SignalParams()
    hop, phase = params.windows.hop_s, 0.7
    recording = synthetic(500.0, 10.0)

    def phased() -> WindowPipeline:
        return WindowPipeline(params, CHANNELS, warmup_s=WARMUP_S, phase_s=phase)

    reference = recording_windows(phased(), recording)
    assert_same(live(recording, params, seed=4, held=HeldFeed(phased())), reference)
    for w in reference:  # each end in [k * hop + phase, ... + one fNIRS period)
        assert 0 <= (w.t_end - phase) % hop < 0.1 + 1e-9, w.t_end
    unphased = offline(recording, params)
    assert {round(w.t_end % hop, 3) for w in unphased} != {
        round(w.t_end % hop, 3) for w in reference
    }


@pytest.mark.parametrize("phase", [-0.1, 2.0, 5.0])
def test_a_grid_phase_outside_the_hop_is_refused_with_the_key(phase):
    from contract.errors import ConfigError

    with pytest.raises(ConfigError) as info:
        WindowPipeline(SignalParams(), CHANNELS, hop_s=2.0, phase_s=phase)
    assert "windows.phase_s" in str(info.value.key) and info.value.fix
