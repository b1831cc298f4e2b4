"""Live windows equal training's windows on a simulated session with rTMS and cues.

A simulated session is fed chunk by chunk (random sizes, float32 as LSL carries them)
through the window pipeline with a fake clock; every window must match
:func:`models.pipeline.recording.session_windows` on the same recording, sample for sample.
"""

from __future__ import annotations

import numpy as np
import pytest

from models.io.bids import BidsDataset
from models.pipeline.pipeline import WindowPipeline
from models.pipeline.recording import describe_block, session_windows
from models.pipeline.streams import Chunk
from models.simulation.montage import EEG_CHANNELS
from models.windows import SignalParams


def _feed(recording, params, hop_s, rng, drop=None):
    """Run the live path over ``recording``; return the windows in emission order."""
    pipeline = WindowPipeline(params, tuple(EEG_CHANNELS), hop_s=hop_s)
    buffers = pipeline.buffers
    blocks = {"eeg": recording.eeg, "nirs": recording.nirs}
    for role, block in blocks.items():
        pipeline.start(role, 1, describe_block(block, role))
    pipeline.start("markers", 1, None)
    pipeline.feed(Chunk("markers", 1, list(recording.markers.labels), recording.markers.times, 0))
    pipeline.markers_seen(np.inf)
    pos = {"eeg": 0, "nirs": 0}
    out = []
    t = min(block.times[0] for block in blocks.values())
    end = max(block.times[-1] for block in blocks.values())
    while t <= end + 0.1:
        t += float(rng.uniform(0.005, 0.08))
        for role, block in blocks.items():
            stop = int(np.searchsorted(block.times, t, side="right"))
            if stop > pos[role]:
                data = block.data[pos[role] : stop].astype(np.float32).astype(np.float64)
                stamps = block.times[pos[role] : stop]
                gap = 0
                if drop is not None and role == drop[0] and pos[role] <= drop[1] < stop:
                    keep = np.ones(len(stamps), bool)
                    keep[drop[1] - pos[role] : drop[1] - pos[role] + drop[2]] = False
                    data, stamps, gap = data[keep], stamps[keep], drop[2]
                chunk = Chunk(role, 1, data, stamps, t, gap_before=0)
                if gap:
                    # the counter reports the gap at the first chunk after it
                    first = Chunk(
                        role, 1, data[: drop[1] - pos[role]], stamps[: drop[1] - pos[role]], t
                    )
                    rest = Chunk(
                        role, 1, data[drop[1] - pos[role] :], stamps[drop[1] - pos[role] :], t, gap
                    )
                    for part in (first, rest):
                        if len(part.stamps):
                            buffers[role].add(part)
                else:
                    buffers[role].add(chunk)
                pos[role] = stop
        out.extend(pipeline.ready(t))
    for role in blocks:
        pipeline.lost(role)
    out.extend(pipeline.ready(t))
    return out


@pytest.fixture(scope="module")
def session(tiny_cohort):
    ds = BidsDataset(tiny_cohort)
    subject = ds.subjects[0]
    return ds.read(subject, ds.sessions(subject)[0].session)


def test_every_live_window_equals_the_offline_window(session):
    params = SignalParams()
    offline = session_windows(session, params, tuple(EEG_CHANNELS), hop_s=2.0)
    live = _feed(session, params, 2.0, np.random.default_rng(1))
    assert [w.seq for w in live] == list(range(len(live)))
    assert len(live) == len(offline.t_end)
    for i, (w, t_end, reasons) in enumerate(zip(live, offline.t_end, offline.reasons, strict=True)):
        assert w.t_end == pytest.approx(t_end, abs=1e-9)
        assert w.reasons == reasons
        np.testing.assert_allclose(w.window.eeg, offline.eeg[i], atol=1e-5)
        np.testing.assert_allclose(w.window.nirs, offline.nirs[i], atol=1e-5)
        np.testing.assert_allclose(w.window.sci, offline.sci[i], atol=1e-9)
        # what the model knows about the task: the same cue rule live and offline
        np.testing.assert_allclose(w.window.context, offline.context[i], atol=1e-6)
        np.testing.assert_allclose(w.window.features, offline.features[i], rtol=1e-3, atol=1e-3)
    flagged = {r for w in live for r in w.reasons}
    assert "rtms_train" in flagged, "the cohort's rTMS block must be flagged live as offline"
    assert offline.context.max() > 0.5, "the session's cues reach the model"


def test_a_counter_gap_flags_exactly_the_windows_that_contain_it(session):
    params = SignalParams()
    eeg = session.eeg
    lost_at = round(61.0 * eeg.sfreq)
    live = _feed(session, params, 2.0, np.random.default_rng(2), drop=("eeg", lost_at, 40))
    gap_t = eeg.times[lost_at]
    for w in live:
        contains = w.t_begin <= gap_t + 40 / eeg.sfreq and gap_t < w.t_end
        assert ("eeg_gap" in w.reasons) == contains, (w.t_begin, w.t_end, w.reasons)
        assert "eeg_misaligned" not in w.reasons
    assert [w.seq for w in live] == list(range(len(live)))
