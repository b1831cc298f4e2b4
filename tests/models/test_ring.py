"""The ring buffer keeps absolute indices and refuses spans it does not hold."""

from __future__ import annotations

import numpy as np
import pytest

from models.pipeline.ring import RingBuffer, SpanUnavailableError


def test_reads_back_what_was_written_across_the_wrap_in_any_chunking():
    rng = np.random.default_rng(0)
    data = rng.standard_normal((1000, 3))
    ring = RingBuffer(97, 3)
    pos = 0
    while pos < len(data):
        n = int(rng.integers(0, 40))
        ring.write(data[pos : pos + n])
        pos += n
        if ring.end >= 50:
            start = ring.end - 50
            np.testing.assert_array_equal(ring.read(start, ring.end), data[start : ring.end])
    assert ring.end == 1000 and ring.first == 1000 - 97


def test_a_chunk_longer_than_the_buffer_keeps_its_tail():
    ring = RingBuffer(10)
    ring.write(np.arange(25.0))
    assert ring.end == 25
    np.testing.assert_array_equal(ring.read(15, 25), np.arange(15.0, 25.0))


@pytest.mark.parametrize(("start", "stop"), [(0, 5), (95, 101), (60, 50)])
def test_overwritten_unwritten_or_reversed_spans_are_refused(start, stop):
    ring = RingBuffer(10)
    ring.write(np.arange(100.0))
    with pytest.raises(SpanUnavailableError):
        ring.read(start, stop)


def test_writing_never_reallocates():
    ring = RingBuffer(16, 2)
    before = ring._data
    for _ in range(10):
        ring.write(np.ones((7, 2)))
    assert ring._data is before
