"""XdfWriter: pyxdf reads back exactly what was written, even after SIGKILL or power loss."""

from __future__ import annotations

import json
import signal
import struct
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
import pyxdf

from contract.errors import OutputError, RecordingFormatError
from models.io.xdf_writer import (
    BOUNDARY_UUID,
    TAG_BOUNDARY,
    TAG_CLOCK_OFFSET,
    TAG_SAMPLES,
    TAG_STREAM_FOOTER,
    TAG_STREAM_HEADER,
    XdfWriter,
    channel_desc,
    truncate_to_last_chunk,
)

REPO = Path(__file__).resolve().parents[2]
EEG_LABELS = [f"E{i + 1:02d}" for i in range(32)] + ["counter"]
MARKERS = ["start", "", "Δβ ünïcødé ✓ 脳波", "a,b;c\t<&>", "end"]
T0 = 12_345.678


def load(path: Path, **kwargs: bool) -> dict[str, dict]:
    """The streams of ``path`` by name, as pyxdf gives them (raw timestamps by default)."""
    options = {"synchronize_clocks": False, "dejitter_timestamps": False, **kwargs}
    streams, _header = pyxdf.load_xdf(str(path), **options)
    return {s["info"]["name"][0]: s for s in streams}


def chunks(path: Path) -> list[tuple[int, int, int, int, int]]:
    """(start, end, tag, stream id, samples) of every chunk, read independently of the writer."""
    data = path.read_bytes()
    assert data[:4] == b"XDF:"
    out, pos = [], 4
    while pos < len(data):
        width = data[pos]
        length = int.from_bytes(data[pos + 1 : pos + 1 + width], "little")
        head = pos + 1 + width
        tag = int.from_bytes(data[head : head + 2], "little")
        stream_id = int.from_bytes(data[head + 2 : head + 6], "little") if tag != 1 else 0
        count = 0
        if tag == TAG_SAMPLES:
            count_width = data[head + 6]
            count = int.from_bytes(data[head + 7 : head + 7 + count_width], "little")
        out.append((pos, head + length, tag, stream_id, count))
        pos = head + length
    assert pos == len(data)
    return out


def eeg_block(start: int, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``n`` EEG samples from sample ``start``: jittered timestamps, the counter in column 32."""
    index = np.arange(start, start + n)
    stamps = T0 + index / 500.0 + rng.normal(0.0, 1e-5, n)
    values = rng.standard_normal((n, 33)).astype(np.float32)
    values[:, 32] = index
    return stamps, values


@pytest.fixture
def recording(tmp_path: Path) -> tuple[Path, dict]:
    """A 12 s recording of EEG, Markers and JSON scores, and what was written to it."""
    rng = np.random.default_rng(7)
    path = tmp_path / "rec.xdf"
    scores = [
        json.dumps({"t": i, "score": i / 10, "features": [float(x) for x in rng.random(30)]})
        for i in range(12)
    ]
    assert all(len(s.encode()) > 255 for s in scores)
    written: dict = {"eeg_t": [], "eeg_x": [], "marker_t": [], "score_t": []}
    with XdfWriter(path) as writer:
        eeg = writer.add_stream(
            "NeuroCLIP EEG", "EEG", 33, 500.0, "float32", "amp-1", channel_desc(EEG_LABELS)
        )
        markers = writer.add_stream("Markers", "Markers", 1, 0.0, "string", "mk-1")
        score = writer.add_stream("Scores", "Scores", 1, 1.0, "string")
        writer.write_clock_offset(eeg, T0, 0.25)
        for block in range(240):  # 240 chunks of 25 samples = 12 s
            stamps, values = eeg_block(block * 25, 25, rng)
            writer.write_samples(eeg, stamps, values)
            written["eeg_t"].append(stamps)
            written["eeg_x"].append(values)
            if block % 48 == 5:
                t = [stamps[3]]
                writer.write_samples(markers, t, [[MARKERS[len(written["marker_t"])]]])
                written["marker_t"] += t
            if block % 20 == 19:
                writer.write_samples(score, [stamps[-1]], [[scores[block // 20]]])
                written["score_t"].append(stamps[-1])
        writer.write_clock_offset(eeg, T0 + 12.0, 0.25)
    written["eeg_t"] = np.concatenate(written["eeg_t"])
    written["eeg_x"] = np.concatenate(written["eeg_x"])
    written["scores"] = scores
    return path, written


def test_round_trip_keeps_samples_timestamps_and_metadata(recording):
    path, written = recording
    streams = load(path)
    assert list(streams) == ["NeuroCLIP EEG", "Markers", "Scores"]

    eeg = streams["NeuroCLIP EEG"]
    assert eeg["time_series"].dtype == np.float32
    np.testing.assert_array_equal(eeg["time_series"], written["eeg_x"])
    np.testing.assert_array_equal(eeg["time_stamps"], written["eeg_t"])
    info = eeg["info"]
    assert (info["type"], info["channel_count"], info["nominal_srate"]) == (
        ["EEG"],
        ["33"],
        ["500.0"],
    )
    assert (info["channel_format"], info["source_id"]) == (["float32"], ["amp-1"])
    labels = [ch["label"][0] for ch in info["desc"][0]["channels"][0]["channel"]]
    assert labels == EEG_LABELS

    markers = streams["Markers"]
    assert markers["time_series"] == [[m] for m in MARKERS]
    np.testing.assert_array_equal(markers["time_stamps"], written["marker_t"])
    assert markers["info"]["nominal_srate"] == ["0.0"]

    scores = streams["Scores"]
    assert scores["time_series"] == [[s] for s in written["scores"]]
    np.testing.assert_array_equal(scores["time_stamps"], written["score_t"])
    assert [json.loads(s[0])["t"] for s in scores["time_series"]] == list(range(12))


def test_long_strings_are_written_with_four_byte_lengths(recording):
    path, written = recording
    raw = path.read_bytes()
    text = written["scores"][0].encode("utf-8")
    assert b"\x04" + struct.pack("<I", len(text)) + text in raw
    short = MARKERS[2].encode("utf-8")
    assert b"\x01" + bytes([len(short)]) + short in raw


def test_footer_holds_first_last_count_and_clock_offsets(recording):
    path, written = recording
    streams = load(path)
    footer = streams["NeuroCLIP EEG"]["footer"]["info"]
    assert float(footer["first_timestamp"][0]) == written["eeg_t"][0]
    assert float(footer["last_timestamp"][0]) == written["eeg_t"][-1]
    assert int(footer["sample_count"][0]) == 6000
    offsets = footer["clock_offsets"][0]["offset"]
    assert [(float(o["time"][0]), float(o["value"][0])) for o in offsets] == [
        (T0, 0.25),
        (T0 + 12.0, 0.25),
    ]
    marker_footer = streams["Markers"]["footer"]["info"]
    assert int(marker_footer["sample_count"][0]) == len(MARKERS)
    assert float(marker_footer["last_timestamp"][0]) == written["marker_t"][-1]
    assert marker_footer["clock_offsets"] == [None]


def test_clock_offsets_reach_pyxdf_and_shift_timestamps_when_synchronised(recording):
    path, written = recording
    raw = load(path)["NeuroCLIP EEG"]
    assert raw["clock_times"] == [T0, T0 + 12.0]
    assert raw["clock_values"] == [0.25, 0.25]
    synced = load(path, synchronize_clocks=True)
    np.testing.assert_allclose(synced["NeuroCLIP EEG"]["time_stamps"], written["eeg_t"] + 0.25)
    # a stream without offsets is left alone
    np.testing.assert_array_equal(synced["Markers"]["time_stamps"], written["marker_t"])


@pytest.mark.parametrize("fmt", ["int8", "int16", "int32", "int64", "double64"])
def test_every_numeric_format_round_trips(tmp_path, fmt):
    dtype = {"int8": np.int8, "int16": np.int16, "int32": np.int32, "int64": np.int64}
    dtype["double64"] = np.float64
    info = np.iinfo(dtype[fmt]) if fmt != "double64" else np.finfo(np.float64)
    values = np.array([[info.min, 0, info.max], [1, -1, 2]], dtype=dtype[fmt])
    with XdfWriter(tmp_path / "f.xdf") as writer:
        sid = writer.add_stream("S", "Misc", 3, 100.0, fmt)
        writer.write_samples(sid, [1.0, 1.01], values)
    stream = load(tmp_path / "f.xdf")["S"]
    assert stream["time_series"].dtype == dtype[fmt]
    np.testing.assert_array_equal(stream["time_series"], values)


def test_full_lsl_stream_info_is_kept(tmp_path, lsl_env):
    import pylsl

    info = pylsl.StreamInfo("fNIRS", "NIRS", 2, 10.0, "float32", "nirs-7")
    channels = info.desc().append_child("channels")
    for label in ("S1_D1 760", "S1_D1 850"):
        channels.append_child("channel").append_child_value("label", label)
    info.desc().append_child_value("manufacturer", "Simulated & Co")
    with XdfWriter(tmp_path / "n.xdf") as writer:
        sid = writer.add_stream("fNIRS", "NIRS", 2, 10.0, "float32", desc_xml=info.as_xml())
        writer.write_samples(sid, [5.0, 5.1], [[1.0, 2.0], [3.0, 4.0]])
    stream = load(tmp_path / "n.xdf")["fNIRS"]
    header = stream["info"]
    assert header["source_id"] == ["nirs-7"]
    assert header["nominal_srate"] == ["10.0"]
    assert "v4data_port" in header  # LSL's own fields are kept
    desc = header["desc"][0]
    assert desc["manufacturer"] == ["Simulated & Co"]
    assert [c["label"][0] for c in desc["channels"][0]["channel"]] == ["S1_D1 760", "S1_D1 850"]
    np.testing.assert_array_equal(stream["time_series"], [[1, 2], [3, 4]])


def test_boundary_chunks_every_10_s_of_samples_or_every_n_chunks(tmp_path):
    rng = np.random.default_rng(1)
    with XdfWriter(tmp_path / "b.xdf") as writer:
        sid = writer.add_stream("EEG", "EEG", 33, 500.0, "float32")
        for block in range(250):  # 25 s in 0.1 s chunks
            writer.write_samples(sid, *eeg_block(block * 50, 50, rng))
    layout = chunks(tmp_path / "b.xdf")
    tags = [c[2] for c in layout]
    assert tags.count(TAG_BOUNDARY) == 2
    data = (tmp_path / "b.xdf").read_bytes()
    for _start, end, tag, _, _ in layout:
        if tag == TAG_BOUNDARY:
            assert data[end - 16 : end] == BOUNDARY_UUID
    # samples chunks before each boundary span at least 10 s: 101 chunks, then 101 more
    samples_before = [tags[:i].count(TAG_SAMPLES) for i, t in enumerate(tags) if t == TAG_BOUNDARY]
    assert samples_before == [101, 202]

    with XdfWriter(tmp_path / "m.xdf", boundary_every_chunks=4) as writer:
        sid = writer.add_stream("Markers", "Markers", 1, 0.0, "string")
        for i in range(10):
            writer.write_samples(sid, [float(i)], [[f"m{i}"]])
    tags = [c[2] for c in chunks(tmp_path / "m.xdf")]
    # chunks 1-4 (file header, stream header, m0, m1), then m2-m5 and m6-m9
    assert tags.count(TAG_BOUNDARY) == 3
    assert tags[-2:] == [TAG_BOUNDARY, TAG_STREAM_FOOTER]


def test_pyxdf_resumes_at_the_next_boundary_after_a_damaged_chunk(tmp_path):
    rng = np.random.default_rng(2)
    path = tmp_path / "d.xdf"
    with XdfWriter(path) as writer:
        sid = writer.add_stream("EEG", "EEG", 33, 500.0, "float32")
        for block in range(150):  # 15 s: one boundary, after 10 s
            writer.write_samples(sid, *eeg_block(block * 50, 50, rng))
    layout = chunks(path)
    sample_chunks = [c for c in layout if c[2] == TAG_SAMPLES]
    boundary = next(i for i, c in enumerate(layout) if c[2] == TAG_BOUNDARY)
    after = sum(c[4] for c in layout[boundary:] if c[2] == TAG_SAMPLES)
    good = load(path)["EEG"]
    data = bytearray(path.read_bytes())
    start = sample_chunks[2][0]
    data[start + 1 + data[start] + 2 + 4] = 7  # third samples chunk: bad sample-count width
    path.write_bytes(bytes(data))
    damaged = load(path)["EEG"]
    assert len(damaged["time_stamps"]) == 100 + after
    np.testing.assert_array_equal(damaged["time_stamps"][:100], good["time_stamps"][:100])
    np.testing.assert_array_equal(damaged["time_stamps"][100:], good["time_stamps"][-after:])


CHILD = """
import sys, numpy as np
from models.io.xdf_writer import XdfWriter
writer = XdfWriter(sys.argv[1])
sid = writer.add_stream("EEG", "EEG", 33, 500.0, "float32")
k = 0
while True:
    index = np.arange(k * 25, (k + 1) * 25)
    writer.write_samples(sid, index / 500.0, np.repeat(index[:, None], 33, axis=1))
    k += 1
    print(k, flush=True)
"""


def test_sigkill_mid_recording_leaves_a_file_pyxdf_reads(tmp_path):
    path = tmp_path / "killed.xdf"
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(path)], cwd=REPO, stdout=subprocess.PIPE, text=True
    )
    reported = 0
    try:
        while reported < 2000:
            reported = int(proc.stdout.readline())
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait(timeout=30)
        proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL
    stream = load(path)["EEG"]
    n = len(stream["time_stamps"])
    assert n >= reported * 25  # every chunk written before the kill
    assert n % 25 == 0  # and only whole chunks
    np.testing.assert_array_equal(stream["time_stamps"], np.arange(n) / 500.0)
    np.testing.assert_array_equal(stream["time_series"][:, 32], np.arange(n))
    assert "footer" not in stream
    removed = truncate_to_last_chunk(path)
    assert removed < 25 * (9 + 33 * 4) + 16  # at most a piece of one chunk (normally none)
    assert len(load(path)["EEG"]["time_stamps"]) == n


CHILD_CTRL_C = """
import sys, time, numpy as np
from models.io.xdf_writer import XdfWriter
with XdfWriter(sys.argv[1]) as writer:
    sid = writer.add_stream("EEG", "EEG", 1, 500.0, "float32")
    writer.write_samples(sid, np.arange(100) / 500.0, np.arange(100.0))
    print("ready", flush=True)
    time.sleep(60)
"""


def test_ctrl_c_ends_the_with_block_with_footers(tmp_path):
    path = tmp_path / "interrupted.xdf"
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD_CTRL_C, str(path)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout.readline().strip() == "ready"
        proc.send_signal(signal.SIGINT)
        _out, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
        proc.wait(timeout=30)
    assert "KeyboardInterrupt" in err
    stream = load(path)["EEG"]
    footer = stream["footer"]["info"]
    assert int(footer["sample_count"][0]) == len(stream["time_stamps"]) == 100
    assert float(footer["last_timestamp"][0]) == 99 / 500.0


@pytest.fixture
def small_recording(tmp_path: Path) -> Path:
    """Every chunk type in a few chunks: headers, samples, clock offset, boundary, footers."""
    rng = np.random.default_rng(3)
    path = tmp_path / "small.xdf"
    with XdfWriter(path) as writer:
        eeg = writer.add_stream("EEG", "EEG", 33, 500.0, "float32", "", channel_desc(EEG_LABELS))
        markers = writer.add_stream("Markers", "Markers", 1, 0.0, "string")
        writer.write_samples(eeg, *eeg_block(0, 10, rng))
        writer.write_clock_offset(eeg, T0, -0.5)
        writer.write_samples(markers, [T0 + 0.01], [["stimulus ✓"]])
        writer.write_samples(eeg, *eeg_block(10, 10, rng))
        writer.write_boundary()
        writer.write_samples(eeg, *eeg_block(20, 30, rng))
    return path


def test_power_loss_cut_anywhere_is_repaired_to_a_file_pyxdf_reads(small_recording, tmp_path):
    good = small_recording.read_bytes()
    good_eeg = load(small_recording)["EEG"]
    layout = chunks(small_recording)
    assert [c[2] for c in layout] == [1, 2, 2, 3, 4, 3, 3, 5, 3, 6, 6]
    damaged = tmp_path / "cut.xdf"
    cuts = 0
    for index, (start, end, tag, _, _) in enumerate(layout):
        eeg_before = sum(c[4] for c in layout[:index] if c[2] == TAG_SAMPLES and c[3] == 1)
        for cut in sorted(
            {start + 1, start + 2, start + 3, start + 5, (start + end) // 2, end - 1}
        ):
            damaged.write_bytes(good[:cut])
            assert truncate_to_last_chunk(damaged) == cut - start, (tag, cut)
            assert damaged.read_bytes() == good[:start]
            streams = load(damaged)
            if index <= 1:  # cut in the file header or the first stream header
                assert streams == {}
            else:
                np.testing.assert_array_equal(
                    streams["EEG"]["time_stamps"], good_eeg["time_stamps"][:eeg_before]
                )
            cuts += 1
    assert cuts > 50
    damaged.write_bytes(good)
    assert truncate_to_last_chunk(damaged) == 0
    assert damaged.read_bytes() == good


def test_pyxdf_cannot_read_some_cut_files_that_the_repair_fixes(small_recording, tmp_path):
    good = small_recording.read_bytes()
    layout = chunks(small_recording)
    end = next(c[1] for c in layout if c[2] == TAG_CLOCK_OFFSET)
    damaged = tmp_path / "cut.xdf"
    damaged.write_bytes(good[: end - 3])
    with pytest.raises(struct.error):
        load(damaged)
    header_start, header_end = next(c[:2] for c in layout if c[2] == TAG_STREAM_HEADER)
    damaged.write_bytes(good[: header_end - 5])
    with pytest.raises(ET.ParseError):
        load(damaged)
    assert truncate_to_last_chunk(damaged) == header_end - 5 - header_start
    assert load(damaged) == {}


def test_zero_filled_tail_is_cut_but_damage_before_intact_data_is_refused(
    small_recording, tmp_path
):
    good = small_recording.read_bytes()
    damaged = tmp_path / "zeros.xdf"
    damaged.write_bytes(good + bytes(4096))
    assert truncate_to_last_chunk(damaged) == 4096
    assert damaged.read_bytes() == good
    footer_start = next(c[0] for c in chunks(small_recording) if c[2] == TAG_STREAM_FOOTER)
    cut = footer_start + 9
    damaged.write_bytes(good[:cut] + bytes(5000))  # a footer's content zero-filled
    assert truncate_to_last_chunk(damaged) == 5000 + cut - footer_start
    assert "footer" not in load(damaged)["EEG"]

    middle = bytearray(good)
    clock_start = next(c[0] for c in chunks(small_recording) if c[2] == TAG_CLOCK_OFFSET)
    middle[clock_start] = 3  # an impossible length width, with intact chunks after it
    damaged.write_bytes(bytes(middle))
    with pytest.raises(RecordingFormatError, match=f"byte {clock_start}"):
        truncate_to_last_chunk(damaged)
    assert damaged.read_bytes() == bytes(middle)

    other = tmp_path / "other.xdf"
    other.write_bytes(b"NOPE" + good[4:])
    with pytest.raises(RecordingFormatError, match="magic"):
        truncate_to_last_chunk(other)


def test_refuses_to_overwrite_an_existing_file(small_recording, tmp_path):
    before = small_recording.read_bytes()
    with pytest.raises(OutputError) as caught:
        XdfWriter(small_recording)
    error = caught.value
    assert str(small_recording) in error.message
    assert "already exists" in error.message
    assert "new XDF file" in error.message
    assert error.fix and "another output file" in error.fix
    assert error.path == small_recording
    assert small_recording.read_bytes() == before
    missing = tmp_path / "no-such-folder" / "rec.xdf"
    with pytest.raises(OutputError, match="cannot create"):
        XdfWriter(missing)


def test_misuse_is_refused_and_leaves_the_file_readable(tmp_path):
    path = tmp_path / "m.xdf"
    writer = XdfWriter(path)
    sid = writer.add_stream("EEG", "EEG", 2, 500.0, "float32")
    text = writer.add_stream("Markers", "Markers", 1, 0.0, "string")
    with pytest.raises(ValueError, match="channel_format"):
        writer.add_stream("X", "X", 1, 1.0, "float16")
    with pytest.raises(ValueError, match=r"\(2, 2\)"):
        writer.write_samples(sid, [1.0, 2.0], np.zeros((2, 3)))
    with pytest.raises(ValueError, match="strings"):
        writer.write_samples(text, [1.0, 2.0], [["a"]])
    with pytest.raises(ValueError, match="unknown stream id 9"):
        writer.write_samples(9, [1.0], [[1.0, 2.0]])
    writer.write_samples(sid, [], np.zeros((0, 2)))
    writer.close()
    writer.close()
    assert writer.closed
    with pytest.raises(ValueError, match="closed"):
        writer.write_samples(sid, [1.0], [[1.0, 2.0]])
    streams = load(path)
    assert len(streams["EEG"]["time_stamps"]) == 0
    assert streams["EEG"]["footer"]["info"]["sample_count"] == ["0"]


def test_large_writes_are_split_into_chunks(tmp_path):
    path = tmp_path / "big.xdf"
    rng = np.random.default_rng(4)
    stamps, values = eeg_block(0, 5000, rng)  # 705 kB of samples
    with XdfWriter(path) as writer:
        sid = writer.add_stream("EEG", "EEG", 33, 500.0, "float32")
        writer.write_samples(sid, stamps, values)
    layout = [c for c in chunks(path) if c[2] == TAG_SAMPLES]
    assert len(layout) == 11
    assert all(end - start <= 64 * 1024 + 16 for start, end, *_ in layout)
    assert sum(c[4] for c in layout) == 5000
    stream = load(path)["EEG"]
    np.testing.assert_array_equal(stream["time_series"], values)
    np.testing.assert_array_equal(stream["time_stamps"], stamps)
