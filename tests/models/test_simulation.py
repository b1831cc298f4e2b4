"""The synthetic cohort: reproducible, with the published effect directions."""

from __future__ import annotations

import json
from dataclasses import replace
from functools import cache

import h5py
import numpy as np
import pytest
from scipy import signal

from contract.errors import ConfigError
from contract.settings import InvalidSettingError, load_config
from models.preprocessing import NirsChain, NirsParams
from models.signals import NirsLayout
from models.simulation import SessionSimulator, SimulationConfig, draw_cohort
from models.simulation.montage import EEG_CHANNELS, nirs_pairs
from models.simulation.protocol import intervals
from models.simulation.subject import draw_subject

CFG = SimulationConfig()


def _subject(severity: float, group: str = "MA"):
    return draw_subject("x", group, np.random.default_rng(5), CFG, severity=severity)


def test_montage_meets_the_contract():
    assert len(EEG_CHANNELS) == 32
    pairs = nirs_pairs()
    assert len(pairs) >= 16
    assert {p.region.split("-")[0] for p in pairs} == {"DLPFC", "OFC", "FP"}


def test_same_seed_same_signals_in_any_number_of_calls():
    subject = _subject(0.5)
    a = SessionSimulator(subject, "pre", 30, CFG, with_rtms_block=False).generate_all()
    sim = SessionSimulator(subject, "pre", 30, CFG, with_rtms_block=False)
    parts = [sim.next_seconds(k) for k in (1, 7, 22)]
    np.testing.assert_array_equal(np.vstack([p.eeg for p in parts]), a.eeg)
    np.testing.assert_array_equal(np.vstack([p.nirs for p in parts]), a.nirs)


def _band_power(eeg: np.ndarray, lo: float, hi: float, channel: str) -> float:
    f, p = signal.welch(eeg[:, EEG_CHANNELS.index(channel)], fs=500, nperseg=1000)
    return float(p[(f >= lo) & (f < hi)].sum())


def test_severity_raises_theta_and_beta_and_lowers_alpha():
    low = SessionSimulator(_subject(0.0), "pre", 120, CFG, False).generate_all().eeg
    high = SessionSimulator(_subject(1.0), "pre", 120, CFG, False).generate_all().eeg
    assert _band_power(high, 4, 8, "Fz") > 1.3 * _band_power(low, 4, 8, "Fz")
    assert _band_power(high, 8, 13, "Oz") < 0.75 * _band_power(low, 8, 13, "Oz")
    assert _band_power(high, 15, 25, "Cz") > 1.2 * _band_power(low, 15, 25, "Cz")


def _drug_minus_neutral_hbo(severity: float) -> float:
    sim = SessionSimulator(_subject(severity), "pre", 360, CFG, False)
    chunk = sim.generate_all()
    layout = NirsLayout.from_labels(list(sim.nirs_channels), sim.nirs_distances)
    hb = NirsChain(NirsParams(), CFG.nirs_sfreq, layout)(chunk.nirs).hb
    good = [i for i, p in enumerate(nirs_pairs()) if p.name not in sim.subject.bad_pairs]
    hbo = hb[:, 0::2][:, good].mean(axis=1)
    t = np.arange(len(hbo)) / NirsParams().target_sfreq

    def mean_response(label: str) -> float:
        spans = intervals(sim.events, label)
        return float(np.mean([hbo[(t >= a + 5) & (t < b + 5)].mean() for a, b in spans]))

    return mean_response("cue/drug") - mean_response("cue/neutral")


def test_drug_cue_hbo_response_grows_with_severity_through_our_own_chain():
    assert _drug_minus_neutral_hbo(1.0) > _drug_minus_neutral_hbo(0.0) + 0.2


def test_cohort_groups_craving_and_rtms_response():
    subjects = draw_cohort(SimulationConfig())
    ma = [s for s in subjects if s.group == "MA"]
    hc = [s for s in subjects if s.group == "HC"]
    assert len(ma) == len(hc) == 16
    assert np.mean([s.severity for s in ma]) > np.mean([s.severity for s in hc]) + 0.3
    rng = np.random.default_rng(0)
    assert all(s.severity_at("post") < s.severity_at("pre") for s in ma)
    severities = [s.severity for s in subjects]
    cravings = [s.craving_at("pre", rng) for s in subjects]
    assert np.corrcoef(severities, cravings)[0, 1] > 0.7
    assert not any(s.subject.startswith(("MA", "HC")) for s in subjects), (
        "labels must not reveal group"
    )


def test_rtms_block_has_trains_of_forty_pulses_and_artifacts():
    sim = SessionSimulator(_subject(0.5), "pre", 240, CFG, with_rtms_block=True)
    chunk = sim.generate_all()
    starts = [e.onset for e in sim.events if e.label == "rtms/train_start"]
    pulses = [e.onset for e in sim.events if e.label == "rtms/pulse"]
    assert len(starts) >= 1 and len(pulses) == 40 * len(starts)
    assert np.diff(starts).tolist() == [30.0] * (len(starts) - 1)
    f3 = chunk.eeg[:, EEG_CHANNELS.index("F3")]
    first = int(pulses[0] * 500)
    assert np.abs(np.diff(f3[first - 2 : first + 2])).max() > 1000


# --- any device rate, whole-numbered or not ---------------------------------------------

NIRS_RATES = (7.8125, 10.0, 10.1725, 12.5, 25.0, 50.0)
EEG_RATES = (250.0, 256.0, 500.0, 512.0, 1000.0, 1024.0, 2000.0, 2048.0)


def _at(eeg_sfreq: float = 250.0, nirs_sfreq: float = 10.0, **effects) -> SimulationConfig:
    """The default configuration at these rates (low EEG rate by default: fast tests)."""
    cfg = replace(CFG, eeg_sfreq=eeg_sfreq, nirs_sfreq=nirs_sfreq)
    cfg = replace(cfg, effects=replace(cfg.effects, **effects))
    cfg.check()
    return cfg


def _session(cfg: SimulationConfig, seconds: float, severity: float, rtms: bool):
    subject = draw_subject("x", "MA", np.random.default_rng(5), cfg, severity=severity)
    sim = SessionSimulator(subject, "pre", seconds, cfg, with_rtms_block=rtms)
    return sim, sim.generate_all()


def _assert_grid(signal_: np.ndarray, times: np.ndarray, seconds: float, rate: float) -> None:
    """``round(seconds * rate)`` samples, sample ``k`` at ``k / rate``."""
    n = round(seconds * rate)
    assert signal_.shape[0] == times.size == n
    np.testing.assert_array_equal(times, np.arange(n) / rate)


@pytest.mark.parametrize("rate", EEG_RATES)
def test_eeg_at_device_rates_keeps_grid_alpha_and_pulse_alignment(rate):
    # 30 s: a 7.5 s baseline, one rTMS train (40 pulses from 7.5 s), then rest
    sim, chunk = _session(_at(eeg_sfreq=rate), 30.0, severity=0.0, rtms=True)
    _assert_grid(chunk.eeg, chunk.eeg_times, 30.0, rate)
    oz = chunk.eeg[chunk.eeg_times >= 13.0, EEG_CHANNELS.index("Oz")]
    f, p = signal.welch(oz, fs=rate, nperseg=round(4 * rate))
    band = (f >= 6) & (f <= 14)
    assert abs(f[band][np.argmax(p[band])] - sim.subject.iaf_hz) <= 0.75
    f3 = chunk.eeg[:, EEG_CHANNELS.index("F3")]
    pulses = [e.onset for e in sim.events if e.label == "rtms/pulse"]
    assert len(pulses) == 40
    for onset in pulses:
        k = int(np.ceil(onset * rate))
        jump = k - 2 + int(np.argmax(np.abs(np.diff(f3[k - 3 : k + 3]))))
        # the artifact starts at the first sample at or after its marker
        assert 0 <= jump - onset * rate < 1


@cache
def _cue_response(rate: float):
    """The 850 nm optical density of a drug cue, alone: the session with the cue response
    minus the same session without it (same seed, so every other signal cancels)."""
    sim, on = _session(_at(nirs_sfreq=rate), 50.0, severity=1.0, rtms=False)
    _, off = _session(_at(nirs_sfreq=rate, hbo_cue_um=0.0, hbo_drug_um=0.0), 50, 1.0, False)
    good = [i for i, p in enumerate(nirs_pairs()) if p.name not in sim.subject.bad_pairs]
    od = -np.log(on.nirs / off.nirs)[:, 1::2][:, good].mean(axis=1)
    return sim, on, off, good, od


@pytest.mark.parametrize("rate", NIRS_RATES)
def test_nirs_at_device_rates_keeps_grid_cue_response_and_heartbeat(rate):
    sim, on, off, good, od = _cue_response(rate)
    _assert_grid(on.nirs, on.nirs_times, 50.0, rate)
    ((onset, _end),) = intervals(sim.events, "cue/drug")
    _, ref, _, _, ref_od = _cue_response(10.0)
    # nothing before the marker, then the response of the 10 Hz session, same size and time
    assert np.abs(od[on.nirs_times < onset]).max() < 1e-12
    assert od.max() == pytest.approx(ref_od.max(), rel=1e-6) and od.max() > 0.01
    assert abs(on.nirs_times[np.argmax(od)] - ref.nirs_times[np.argmax(ref_od)]) < 0.15
    np.testing.assert_allclose(
        np.interp(ref.nirs_times, on.nirs_times, od), ref_od, atol=0.03 * ref_od.max()
    )
    # the cardiac pulsation sits at the subject's heart rate
    x = -np.log(off.nirs[:, 1::2][:, good])
    f, p = signal.welch(x - x.mean(axis=0), fs=rate, nperseg=round(16 * rate), axis=0)
    band = (f > 0.7) & (f < 2.0)
    assert abs(f[band][np.argmax(p.mean(axis=1)[band])] - sim.subject.heart_hz) < 0.1


@pytest.mark.parametrize("rate", (7.8125, 10.1725))
def test_fractional_rate_reads_the_same_in_any_number_of_calls(rate):
    cfg = _at(nirs_sfreq=rate)
    subject = _subject(0.5)
    whole = SessionSimulator(subject, "pre", 20.5, cfg, with_rtms_block=False).generate_all()
    sim = SessionSimulator(subject, "pre", 20.5, cfg, with_rtms_block=False)
    parts = [sim.next_seconds(k) for k in (1, 3, 8)] + [sim.generate_all()]
    np.testing.assert_array_equal(np.vstack([p.nirs for p in parts]), whole.nirs)
    np.testing.assert_array_equal(np.concatenate([p.nirs_times for p in parts]), whole.nirs_times)
    _assert_grid(whole.nirs, whole.nirs_times, 20.5, rate)
    # each second holds the samples whose times fall in it: floor or ceil of the rate
    sim = SessionSimulator(subject, "pre", 20.5, cfg, with_rtms_block=False)
    for second in range(20):
        times = sim.next_seconds(1).nirs_times
        assert times.size in (np.floor(rate), np.ceil(rate))
        assert second <= times[0] and times[-1] < second + 1 <= times[-1] + 1 / rate


def test_rate_validation_accepts_device_rates_and_names_what_is_expected():
    for rate in NIRS_RATES:
        _at(nirs_sfreq=rate)
    for rate in EEG_RATES:
        _at(eeg_sfreq=rate)
    cfg = load_config(
        SimulationConfig, None, name="simulate", environ={}, overrides={"nirs_sfreq": 7.8125}
    )
    assert cfg.nirs_sfreq == 7.8125
    for key, rate, expected in (
        ("nirs_sfreq", 5.0, "above 5.4 Hz"),
        ("nirs_sfreq", float("inf"), "finite"),
        ("eeg_sfreq", 100.0, "above 100 Hz"),
        ("eeg_sfreq", float("nan"), "finite"),
    ):
        with pytest.raises(InvalidSettingError, match=expected) as info:
            replace(CFG, **{key: rate}).check()
        assert info.value.key == key
    with pytest.raises(InvalidSettingError, match="above 120 Hz"):
        replace(CFG, eeg_sfreq=110.0, nuisance=replace(CFG.nuisance, line_freq=60.0)).check()


def test_bids_writer_records_the_exact_rates(tmp_path):
    from models.simulation.bids_writer import write_cohort

    overrides = {"cohort.ma": 0, "cohort.hc": 1, "cohort.minutes": 0.5}
    overrides |= {"eeg_sfreq": 256.0, "nirs_sfreq": 10.1725}
    cfg = load_config(SimulationConfig, None, name="simulate", environ={}, overrides=overrides)
    root = write_cohort(tmp_path / "bids", cfg)
    folder = root / "sub-01" / "ses-base"
    eeg = json.loads((folder / "eeg" / "sub-01_ses-base_task-cue_eeg.json").read_text())
    nirs = json.loads((folder / "nirs" / "sub-01_ses-base_task-cue_nirs.json").read_text())
    assert eeg["SamplingFrequency"] == 256.0 and nirs["SamplingFrequency"] == 10.1725
    with h5py.File(folder / "nirs" / "sub-01_ses-base_task-cue_nirs.snirf") as snirf:
        times = snirf["nirs/data1/time"][:]
    np.testing.assert_array_equal(times, np.arange(round(30 * 10.1725)) / 10.1725)
    header = (folder / "eeg" / "sub-01_ses-base_task-cue_eeg.vhdr").read_text()
    assert f"SamplingInterval={1e6 / 256.0}" in header


def test_live_player_stamps_fractional_rates_and_counts_like_the_writer():
    from streamer.lsl.simulator import _StreamClock, chunk_samples

    class Outlet:
        def push_chunk(self, data, stamps):
            self.data, self.stamps = data, stamps

    clock = _StreamClock("nirs", 10.1725, 0.0, (), ("a", "b"))
    assert clock.total(600.0) == round(600 * 10.1725) == 6104
    outlet = Outlet()
    clock.push(outlet, np.ones((30, 2)), 20, 100.0)
    clock.push(outlet, np.ones((10, 2)), 10, 100.0)
    np.testing.assert_array_equal(outlet.stamps, 100.0 + np.arange(20, 30) / 10.1725)
    np.testing.assert_array_equal(outlet.data[:, -1], np.arange(20, 30))
    assert (chunk_samples(500.0, 0.1), chunk_samples(10.0, 0.5)) == (50, 5)
    assert (chunk_samples(2048.0, 0.1), chunk_samples(7.8125, 0.5)) == (205, 4)


# --- short-separation channels (off by default) ------------------------------------------

SHORT_ON = replace(CFG, short_channels=replace(CFG.short_channels, enabled=True))


def _short_session(cfg: SimulationConfig, seconds: float = 120.0):
    subject = draw_subject("x", "MA", np.random.default_rng(5), cfg, severity=0.8)
    sim = SessionSimulator(subject, "pre", seconds, cfg, with_rtms_block=False)
    return sim, sim.generate_all()


def test_short_channels_only_when_switched_on_and_under_15_mm():
    from models.signals import SHORT_SEPARATION_M

    off, _ = _short_session(CFG, 2.0)
    layout = NirsLayout.from_labels(list(off.nirs_channels), off.nirs_distances)
    assert not layout.short_mask().any() and len(off.nirs_pairs) == len(nirs_pairs())
    on, chunk = _short_session(SHORT_ON, 2.0)
    assert chunk.nirs.shape[1] == len(on.nirs_channels) == 2 * (len(nirs_pairs()) + 9)
    layout = NirsLayout.from_labels(list(on.nirs_channels), on.nirs_distances)
    short = layout.short_mask()
    assert short.sum() == 9 and not short[: len(nirs_pairs())].any()
    assert np.all(layout.pair_distances()[short] < SHORT_SEPARATION_M)
    np.testing.assert_allclose(layout.pair_distances()[short], 0.008)
    # NIRx numbering: one detector per source, after the 8 long detectors
    names = [p.name for p in on.nirs_pairs[len(nirs_pairs()) :]]
    assert names == [f"S{i}_D{8 + i}" for i in range(1, 10)]
    # the long pairs keep their labels and columns
    assert on.nirs_channels[: 2 * len(nirs_pairs())] == off.nirs_channels


def test_default_output_is_unchanged_by_the_option():
    # off is the default, and the option draws nothing from the session's other streams:
    # the EEG is the same with it on, and the long pairs' non-scalp signal too
    assert not CFG.short_channels.enabled
    _, off = _short_session(CFG, 20.0)
    _, on = _short_session(SHORT_ON, 20.0)
    np.testing.assert_array_equal(on.eeg, off.eeg)
    n_long = 2 * len(nirs_pairs())
    assert on.nirs.shape[1] > off.nirs.shape[1] == n_long
    no_scalp = replace(SHORT_ON.short_channels, superficial_gain=0.0)
    _, flat = _short_session(replace(SHORT_ON, short_channels=no_scalp), 20.0)
    np.testing.assert_array_equal(flat.nirs[:, :n_long], off.nirs)


def _filtered_hb(sim, chunk) -> tuple[np.ndarray, list[str]]:
    """Band-passed HbO/HbR of every pair (short ones included), per pair in column order."""
    from models.preprocessing.nirs import BeerLambert, OpticalDensity

    layout = NirsLayout.from_labels(list(sim.nirs_channels), sim.nirs_distances)
    hb = BeerLambert(layout, 6.0)(OpticalDensity(300)(chunk.nirs))
    sos = signal.butter(2, [0.01, 0.5], btype="bandpass", fs=SHORT_ON.nirs_sfreq, output="sos")
    return signal.sosfiltfilt(sos, hb, axis=0), [name for name, _ in layout.pairs()]


def test_scalp_signal_is_shared_by_the_short_and_long_pairs_of_a_source():
    sim, chunk = _short_session(SHORT_ON)
    hb, names = _filtered_hb(sim, chunk)
    good = [p for p in nirs_pairs() if p.name not in sim.subject.bad_pairs]
    for pair in good[:4]:
        k, s = names.index(pair.name), names.index(f"S{pair.source}_D{8 + pair.source}")
        assert np.corrcoef(hb[:, 2 * k], hb[:, 2 * s])[0, 1] > 0.5
    # without the scalp signal the short pair is instrument noise, unrelated to the long one
    quiet = replace(SHORT_ON.short_channels, superficial_gain=0.0)
    sim, chunk = _short_session(replace(SHORT_ON, short_channels=quiet))
    hb, names = _filtered_hb(sim, chunk)
    pair = good[0]
    k, s = names.index(pair.name), names.index(f"S{pair.source}_D{8 + pair.source}")
    assert abs(np.corrcoef(hb[:, 2 * k], hb[:, 2 * s])[0, 1]) < 0.3


def test_short_channel_regression_takes_out_what_the_scalp_adds():
    # the project's regression lowers the long pairs' HbO spread when the scalp signal is
    # there, and leaves it alone when the short channels see instrument noise only (no
    # motion here: a motion dip shows in short and long pairs alike, and is regressed too)
    still = replace(SHORT_ON.nuisance, motion_per_min=0.0)
    on = replace(SHORT_ON, eeg_sfreq=250.0, nuisance=still)
    quiet = replace(on, short_channels=replace(on.short_channels, superficial_gain=0))
    after = slice(round(120 * NirsParams().target_sfreq), None)  # the running fit has settled

    def hbo_sd(cfg: SimulationConfig) -> tuple[float, float]:
        sim, chunk = _short_session(cfg, 300.0)
        layout = NirsLayout.from_labels(list(sim.nirs_channels), sim.nirs_distances)
        good = [i for i, p in enumerate(nirs_pairs()) if p.name not in sim.subject.bad_pairs]
        sds = []
        for regress in (False, True):
            params = NirsParams(short_channel_regression=regress)
            hb = NirsChain(params, cfg.nirs_sfreq, layout)(chunk.nirs).hb
            sds.append(float(np.std(hb[after, 0::2][:, good])))
        return sds[0], sds[1]

    raw, regressed = hbo_sd(on)
    assert regressed < 0.7 * raw
    raw, regressed = hbo_sd(quiet)
    assert regressed > 0.95 * raw


def test_writers_carry_the_short_channels(tmp_path):
    from models.io.stream_desc import channels_from_xml, stream_layout
    from models.simulation.bids_writer import write_cohort
    from streamer.lsl.simulator import _nirs_info

    overrides = {"cohort.ma": 0, "cohort.hc": 1, "cohort.minutes": 0.5}
    overrides |= {"short_channels.enabled": True}
    cfg = load_config(SimulationConfig, None, name="simulate", environ={}, overrides=overrides)
    root = write_cohort(tmp_path / "bids", cfg)
    snirf = root / "sub-01" / "ses-base" / "nirs" / "sub-01_ses-base_task-cue_nirs.snirf"
    with h5py.File(snirf) as f:
        src, det = f["nirs/probe/sourcePos3D"][:], f["nirs/probe/detectorPos3D"][:]
        n_columns = f["nirs/data1/dataTimeSeries"].shape[1]
        s9 = f["nirs/data1/measurementList37"]
        assert (int(s9["sourceIndex"][()]), int(s9["detectorIndex"][()])) == (1, 9)
    assert det.shape == (17, 3) and n_columns == 2 * (len(nirs_pairs()) + 9)
    np.testing.assert_allclose(np.linalg.norm(det[8:] - src, axis=1), 0.008)
    # read back through the project's BIDS reader: the distances come from the positions
    from models.io import BidsDataset

    nirs = BidsDataset(root).read("01", "base").nirs
    assert nirs is not None and nirs.nirs.short_mask().sum() == 9
    # the live outlet's desc carries every channel's distance, from which readers tell
    pylsl = pytest.importorskip("pylsl")
    subject = draw_subject("live", "MA", np.random.default_rng(7), cfg, severity=0.7)
    sim = SessionSimulator(subject, "pre", 2.0, cfg, with_rtms_block=False)
    info = _nirs_info(pylsl, cfg, sim.nirs_channels, sim.nirs_distances)
    layout = stream_layout(
        "nirs", channels_from_xml(info.as_xml(), info.channel_count()), "sim"
    ).nirs
    assert layout is not None and layout.short_mask().sum() == 9
    assert "S9_D17:" in info.as_xml()


def test_faults_on_short_channels_need_the_short_channels():
    fault = {"kind": "flat", "stream": "nirs", "channels": ["S1_D9 760"]}
    with pytest.raises(ConfigError, match=r"live\.faults.*short_channels\.enabled"):
        load_config(
            SimulationConfig, None, name="simulate", environ={}, overrides={"live.faults": [fault]}
        )
    cfg = load_config(
        SimulationConfig,
        None,
        name="simulate",
        environ={},
        overrides={"live.faults": [fault], "short_channels.enabled": True},
    )
    assert cfg.live.faults[0].channels == ("S1_D9 760",)


# --- protocol timings: the standard one and the demo's compressed one ------------------

MARKER_VOCABULARY = {"rest", "cue/drug", "cue/neutral", "rtms/train_start", "rtms/pulse"}
MARKER_VOCABULARY |= {"rtms/train_end"}


def _vocabulary(n_trains: int) -> set[str]:
    """The markers of a session whose rTMS block has ``n_trains`` trains."""
    return MARKER_VOCABULARY | {f"rtms/block_start trains={n_trains}"}


def _timeline(protocol, seconds: float, seed: int = 0, rtms: bool = True):
    from models.simulation.protocol import build_timeline

    return build_timeline(seconds, protocol, np.random.default_rng(seed), rtms)


def test_standard_protocol_keeps_its_timings():
    # neuroclip simulate --live streams 600 s: the trains come after half of the cue blocks
    events = _timeline(CFG.protocol, 600.0)
    starts = [e.onset for e in events if e.label == "rtms/train_start"]
    assert starts == [235.0 + 30.0 * k for k in range(6)]
    assert CFG.protocol.cue_blocks_before_rtms is None
    assert {e.label for e in events} == _vocabulary(6)


def test_rtms_can_come_after_a_set_number_of_cue_blocks_in_a_long_stream():
    # what kept the demo in baseline: a day-long live stream put its trains 12 hours in
    protocol = replace(CFG.protocol, cue_blocks_before_rtms=2)
    events = _timeline(protocol, 86400.0)
    first_train = next(e.onset for e in events if e.label == "rtms/train_start")
    assert first_train == 60.0 + 2 * 35.0
    assert next(e.onset for e in _timeline(CFG.protocol, 86400.0) if "train" in e.label) > 40000


@pytest.mark.parametrize("seed", range(12))
def test_compressed_protocol_balances_the_cues_on_each_side_of_the_trains(seed):
    from models.simulation.config import COMPRESSED_PROTOCOL, COMPRESSED_SESSION_S

    events = _timeline(COMPRESSED_PROTOCOL, COMPRESSED_SESSION_S, seed)
    first_train = next(e.onset for e in events if e.label == "rtms/train_start")
    cues = [(e.onset, e.label) for e in events if e.label.startswith("cue/")]
    assert sorted(k for t, k in cues if t < first_train) == ["cue/drug", "cue/neutral"]
    assert sorted(k for t, k in cues if t > first_train) == ["cue/drug", "cue/neutral"]
    assert {e.label for e in events} == _vocabulary(COMPRESSED_PROTOCOL.rtms_trains)
    assert max(e.onset + e.duration for e in events) <= COMPRESSED_SESSION_S


def test_compressed_protocol_shows_every_phase_and_both_cues_within_four_minutes():
    """The demo's session through the monitor's own pipeline and gate, with the default
    model's windows (30 s warm-up, 10 s windows every 2 s): scored resting baseline, drug
    and neutral cues before and after the trains, train windows made unusable by the
    markers and the pulse artefacts, usable inter-train windows, post."""
    from models.bundle import DEFAULT_BUNDLE, load_bundle
    from models.pipeline.pipeline import WindowPipeline
    from models.pipeline.recording import recording_windows
    from models.signals import Markers, Recording, SignalBlock
    from models.simulation.config import COMPRESSED_PROTOCOL, COMPRESSED_SESSION_S

    assert COMPRESSED_SESSION_S <= 4 * 60
    cfg = replace(CFG, protocol=COMPRESSED_PROTOCOL)
    subject = draw_subject("live", "MA", np.random.default_rng(7), cfg, severity=0.7)
    sim = SessionSimulator(subject, "pre", COMPRESSED_SESSION_S, cfg, with_rtms_block=True)
    chunk = sim.generate_all()
    t0 = 5000.0
    layout = NirsLayout.from_labels(list(sim.nirs_channels), sim.nirs_distances)
    n_nirs = len(sim.nirs_channels)
    recording = Recording(
        source="compressed",  # type: ignore[arg-type]
        blocks=(
            SignalBlock(
                "eeg", "eeg", sim.eeg_channels, ("uV",) * 32, 500.0, chunk.eeg, t0 + chunk.eeg_times
            ),
            SignalBlock(
                "nirs",
                "nirs",
                sim.nirs_channels,
                ("V",) * n_nirs,
                10.0,
                chunk.nirs,
                t0 + chunk.nirs_times,
                layout,
            ),
        ),
        markers=Markers(
            t0 + np.array([e.onset for e in sim.events]), tuple(e.label for e in sim.events)
        ),
    )
    bundle = load_bundle(DEFAULT_BUNDLE)
    windows_cfg = bundle.signal_params.windows
    # the resting baseline outlasts the monitor's warm-up and its first window
    assert COMPRESSED_PROTOCOL.baseline_s > windows_cfg.warmup_s + windows_cfg.window_s
    windows = recording_windows(
        WindowPipeline(bundle.signal_params, bundle.eeg_channels), recording
    )
    assert windows and all(w.window is not None for w in windows)

    def where(phase: str) -> list:
        return [w for w in windows if w.phase.phase == phase]

    assert {w.phase.phase for w in windows} == {"baseline", "rtms_train", "inter_train", "post"}
    first_train = t0 + next(e.onset for e in sim.events if e.label == "rtms/train_start")
    resting = [w for w in where("baseline") if w.t_end <= t0 + COMPRESSED_PROTOCOL.baseline_s]
    assert len(resting) >= 5 and all(w.usable and w.phase.cue is None for w in resting)
    assert all(w.t_end <= first_train for w in where("baseline"))
    for phase in ("baseline", "post"):
        assert {w.phase.cue for w in where(phase) if w.usable} >= {"drug", "neutral"}
    in_train = [w for w in windows if w.phase.in_train]
    assert in_train and all(not w.usable and "rtms_train" in w.reasons for w in in_train)
    assert any("tms_pulse" in w.reasons for w in in_train)  # the EEG artefact, blanked
    assert all(not w.usable for w in where("rtms_train"))
    assert any(w.usable for w in where("inter_train"))
    assert all(w.usable for w in where("post"))


def test_live_post_session_is_the_same_subject_after_the_course():
    cfg = load_config(
        SimulationConfig, None, name="simulate", environ={}, overrides={"live.stage": "post"}
    )
    assert cfg.live.stage == "post"
    with pytest.raises(ConfigError, match="stage"):
        load_config(
            SimulationConfig, None, name="simulate", environ={}, overrides={"live.stage": "base"}
        )
    subject = draw_subject("live", "MA", np.random.default_rng(7), cfg, severity=0.7)
    pre = SessionSimulator(subject, "pre", 240.0, cfg, with_rtms_block=True)
    post = SessionSimulator(subject, "post", 240.0, cfg, with_rtms_block=True, session_index=1)
    assert post.severity < pre.severity == 0.7


def test_simulate_prints_one_line_per_subject(tmp_path, capsys):
    import re

    from neuroclip.cli import main

    out = tmp_path / "cohort"
    argv = ["simulate", "--out", str(out), "--ma", "1", "--hc", "2", "--minutes", "0.2"]
    assert main(argv) == 0
    err = capsys.readouterr().err.splitlines()
    assert err[0] == f"simulating 3 subjects (4 sessions of 0.2 min) into {out}"
    pattern = re.compile(r"subject (\d)/3 sub-(\d+): ([12]) sessions? written \(\d+\.\d s\)$")
    lines = [pattern.search(line) for line in err[1:]]
    assert all(lines) and len(lines) == 3, err
    assert [int(m.group(1)) for m in lines] == [1, 2, 3]
    assert sorted(int(m.group(3)) for m in lines) == [1, 1, 2]
    assert {f"sub-{m.group(2)}" for m in lines} == {p.name for p in out.glob("sub-*")}
