"""The window pipeline with a fake clock: late, lost and restarted streams never skip a window."""

from __future__ import annotations

import numpy as np
import pytest

from models.io.stream_desc import StreamLayout
from models.pipeline.buffer import ClockJump
from models.pipeline.holding import HeldFeed
from models.pipeline.pipeline import WindowPipeline
from models.pipeline.streams import Chunk, StreamDescription
from models.signals import NirsLayout
from models.simulation.montage import EEG_CHANNELS, NIRS_WAVELENGTHS, nirs_pairs
from models.windows import SignalParams

RATES = {"eeg": 500.0, "nirs": 10.0}


def _description(role: str) -> StreamDescription:
    if role == "eeg":
        labels = tuple(EEG_CHANNELS)
        nirs = None
    else:
        labels = tuple(f"{p.name} {w:g}" for p in nirs_pairs() for w in NIRS_WAVELENGTHS)
        nirs = NirsLayout.from_labels(labels, distances_m=np.full(len(labels), 0.03))
    layout = StreamLayout(
        labels, ("",) * len(labels), tuple(range(len(labels))), None, np.ones(len(labels)), nirs
    )
    return StreamDescription(
        role, role.upper(), role, "test", RATES[role], len(labels), False, layout
    )


class FakeSession:
    """Two buffers fed with noise in 100 ms chunks on a clock the test moves.

    ``speed`` > 1 stamps samples on a virtual clock that runs that much faster than their
    arrival, as a replay does; ``shift`` moves a device's timestamps without changing when
    its samples come (a clock jump); moving ``t0`` moves when they come (an outage).
    """

    def __init__(self, speed: float = 1.0, held: bool = False):
        params = SignalParams()
        self.jumps = {"eeg": [], "nirs": []}
        self.pipeline = WindowPipeline(
            params,
            tuple(EEG_CHANNELS),
            hop_s=1.0,
            warmup_s=2.0,
            max_wait_s=2.0,
            on_jump=self._record_jump,
        )
        self.buffers = self.pipeline.buffers
        self.held = HeldFeed(self.pipeline) if held else None
        """Feed as the monitor does (:class:`HeldFeed`), else each chunk to its buffer."""
        self.rng = np.random.default_rng(0)
        self.speed = speed
        self.segment = {"eeg": 0, "nirs": 0}
        self.sent = {"eeg": 0, "nirs": 0}
        self.t0 = {"eeg": 100.0, "nirs": 100.0}
        self.shift = {"eeg": 0.0, "nirs": 0.0}
        self.now = 100.0
        self.wall = 100.0
        self.windows = []
        for role in RATES:
            self.restart(role, 100.0)

    def _record_jump(self, role: str, jump: ClockJump) -> None:
        self.jumps[role].append(jump)

    def restart(self, role: str, t: float) -> None:
        self.segment[role] += 1
        self.sent[role] = 0
        self.t0[role] = t
        self.pipeline.start(role, self.segment[role], _description(role))

    def advance(self, seconds: float, silent: tuple[str, ...] = ()) -> None:
        """Move the streams' clock on by ``seconds`` (``seconds / speed`` of arrival)."""
        for _ in range(round(seconds * 10)):
            self.now += 0.1
            self.wall += 0.1 / self.speed
            for role, rate in RATES.items():
                due = round((self.now - self.t0[role]) * rate)
                n = due - self.sent[role]
                if role in silent or n <= 0:
                    continue
                width = len(_description(role).layout.labels)
                data = self.rng.standard_normal((n, width)) * (10 if role == "eeg" else 0.01) + (
                    0 if role == "eeg" else 1.0
                )
                stamps = self.t0[role] + self.shift[role] + np.arange(self.sent[role], due) / rate
                chunk = Chunk(role, self.segment[role], data, stamps, self.wall)
                if self.held is not None:
                    self.held.add(chunk)
                else:
                    self.buffers[role].add(chunk)
                self.sent[role] = due
            if self.held is not None:
                self.held.flush_waiting(self.wall)
            self.windows.extend(self.pipeline.ready(self.wall))


def test_a_silent_stream_yields_late_windows_and_scoring_resumes_after_a_restart():
    s = FakeSession()
    s.advance(20.0)
    assert [w.seq for w in s.windows] == list(range(len(s.windows)))
    n_before = len(s.windows)
    assert n_before >= 6 and all("eeg_late" not in w.reasons for w in s.windows)
    s.advance(6.0, silent=("eeg",))  # the EEG outlet stops sending
    late = s.windows[n_before:]
    assert late and all("eeg_late" in w.reasons for w in late), [w.reasons for w in late]
    assert all(w.t_end <= s.now - 2.0 + 1e-9 for w in late), "emitted before max_wait passed"
    s.buffers["eeg"].mark_lost()
    s.advance(3.0, silent=("eeg",))
    assert "eeg_lost" in s.windows[-1].reasons
    s.restart("eeg", s.now)
    s.advance(20.0)
    reasons = [w.reasons for w in s.windows]
    assert any("eeg_restart" in r for r in reasons)
    stream_trouble = {"eeg_late", "eeg_lost", "eeg_restart", "eeg_incomplete", "eeg_gap", "warmup"}
    assert not stream_trouble & set(reasons[-1]), reasons[-1]  # noise may fail the content gate
    assert [w.seq for w in s.windows] == list(range(len(s.windows)))
    ends = [w.t_end for w in s.windows]
    # the grid does not move: each end is within one fNIRS period after a whole second
    assert np.allclose(np.round(ends), np.floor(ends)) and np.all(np.diff(np.round(ends)) == 1)
    assert s.windows[-1].window is not None


def _jumped_and_steady(speed: float, held: bool = False) -> tuple[FakeSession, FakeSession]:
    """The same session twice: once with clock jumps while samples keep coming, once without."""
    jumped, steady = FakeSession(speed, held), FakeSession(speed, held)
    for s in (jumped, steady):
        s.advance(20.0)
    jumped.shift["nirs"] += 5.0  # the fNIRS device's clock jumps 5 s ahead
    for s in (jumped, steady):
        s.advance(15.0)
    jumped.shift["eeg"] -= 1.0  # the EEG device's clock 1 s back
    for s in (jumped, steady):
        s.advance(15.0)
    jumped.shift["nirs"] -= 8.0  # and the fNIRS clock 8 s back, beyond max_wait and the jump
    for s in (jumped, steady):
        s.advance(20.0)
    return jumped, steady


@pytest.mark.parametrize("speed", [1.0, 10.0])
def test_clock_jumps_while_samples_keep_coming_are_corrected_and_windows_stay_aligned(speed):
    jumped, steady = _jumped_and_steady(speed)
    jumps = jumped.jumps
    assert [j.step_s for j in jumps["nirs"]] == pytest.approx([5.0, -8.0], abs=1e-9)
    assert [j.step_s for j in jumps["eeg"]] == pytest.approx([-1.0], abs=1e-9)
    assert all(j.corrected for js in jumps.values() for j in js), jumps
    assert jumped.buffers["nirs"].clock_correction_s == pytest.approx(3.0)
    # every window is what it would have been without the jumps: same time, flags and data
    assert len(jumped.windows) == len(steady.windows) >= 55
    for a, b in zip(jumped.windows, steady.windows, strict=True):
        assert (a.seq, a.t_begin, a.t_end, a.reasons) == (b.seq, b.t_begin, b.t_end, b.reasons)
        np.testing.assert_array_equal(a.window.eeg, b.window.eeg)
        np.testing.assert_array_equal(a.window.nirs, b.window.nirs)
    stream_trouble = ("_late", "_restart", "_incomplete", "_gap", "_misaligned")
    troubled = [
        w.reasons for w in jumped.windows if any(r.endswith(stream_trouble) for r in w.reasons)
    ]
    assert not troubled, troubled[:5]


@pytest.mark.parametrize("speed", [1.0, 10.0])
def test_an_outage_the_counter_does_not_show_starts_a_new_segment(speed):
    # the fNIRS stream goes silent for 5 s and resumes with its counter continuing: time
    # passed, samples were lost, so later windows are cut on the new timestamps
    s = FakeSession(speed)
    s.advance(20.0)
    n_before = len(s.windows)
    s.t0["nirs"] += 5.0
    s.advance(30.0)
    (jump,) = s.jumps["nirs"]
    assert not s.jumps["eeg"]
    assert not jump.corrected and jump.step_s == pytest.approx(5.0, abs=1e-9)
    assert jump.silent_s == pytest.approx(5.0, abs=0.2)
    assert s.buffers["nirs"].clock_correction_s == 0.0
    after = [w.reasons for w in s.windows[n_before:]]
    assert sum("nirs_restart" in r for r in after) >= 5, after
    assert not any("nirs_misaligned" in r for r in after), "an outage must not mis-cut a window"
    stream_trouble = {"nirs_late", "nirs_restart", "nirs_incomplete", "nirs_gap", "warmup"}
    assert not stream_trouble & set(after[-1]), after[-1]
    assert [w.seq for w in s.windows] == list(range(len(s.windows)))
    ends = np.array([w.t_end for w in s.windows])
    assert np.all(np.diff(np.floor(ends + 1e-6)) == 1), "one window per grid point"


def test_a_stream_whose_clock_jumps_back_further_than_max_wait_is_waited_for_not_lost():
    s = FakeSession()
    s.advance(20.0)
    s.t0["nirs"] -= 5.0  # 5 s back, with a burst of the samples its clock now says are due
    s.advance(40.0)
    (jump,) = s.jumps["nirs"]
    assert jump.corrected and jump.step_s == pytest.approx(-5.0, abs=0.2)
    last = s.windows[-10:]
    stream_trouble = {"nirs_late", "eeg_late", "nirs_restart", "warmup", "nirs_incomplete"}
    assert all(not stream_trouble & set(w.reasons) for w in last), [w.reasons for w in last]
    assert [w.seq for w in s.windows] == list(range(len(s.windows)))


@pytest.mark.parametrize("speed", [1.0, 10.0])
def test_chunks_held_back_meet_every_clock_jump_as_chunk_by_chunk(speed):
    direct, _ = _jumped_and_steady(speed)
    held, _ = _jumped_and_steady(speed, held=True)
    assert held.jumps == direct.jumps and len(direct.jumps["nirs"]) == 2
    assert [(w.seq, w.t_end, w.reasons) for w in held.windows] == [
        (w.seq, w.t_end, w.reasons) for w in direct.windows
    ]
    for a, b in zip(held.windows, direct.windows, strict=True):
        if a.window is not None:
            np.testing.assert_array_equal(a.window.eeg, b.window.eeg)
            np.testing.assert_array_equal(a.window.nirs, b.window.nirs)
    assert held.held.fed_calls < 0.6 * 2 * 10 * 70  # 100 ms chunks of two streams, 70 s
