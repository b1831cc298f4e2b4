"""Treatment phase and cue from the marker stream."""

from __future__ import annotations

from models.pipeline.phase import PhaseTracker


def _tracker() -> PhaseTracker:
    t = PhaseTracker(guard_s=0.5, block_gap_s=60.0)
    t.connected = True
    for label, time in [
        ("rest", 0.0),
        ("cue/drug", 60.0),
        ("rest", 80.0),
        ("rtms/train_start", 100.0),
        ("rtms/train_end", 104.0),
        ("rest", 104.0),
        ("rtms/train_start", 130.0),
        ("rtms/train_end", 134.0),
        ("rest", 134.0),
        ("cue/neutral", 160.0),
        ("rest", 180.0),
    ]:
        t.add(label, time)
    return t


def test_phases_follow_the_rtms_timeline():
    t = _tracker()
    assert t.info(40, 50).phase == "baseline"
    assert t.info(92, 102).phase == "rtms_train"
    assert t.info(94, 104.3).phase == "rtms_train"  # the guard after a train
    assert t.info(110, 120).phase == "inter_train"
    assert t.info(165, 170).phase == "post"


def test_windows_overlapping_a_train_or_a_cue_say_so():
    t = _tracker()
    assert t.info(95, 105).in_train and t.info(104.2, 114).in_train
    assert not t.info(105, 115).in_train
    assert t.info(70, 85).cue == "drug" and t.info(82, 92).cue is None
    assert t.info(150, 161).cue == "neutral"


def test_without_markers_the_phase_is_unknown():
    assert PhaseTracker().info(0, 10).phase == "unknown"
