"""The synthetic cohort: reproducible, with the published effect directions."""

from __future__ import annotations

import numpy as np
from scipy import signal

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
