"""A preallocated, index-based ring buffer: one writer, readers that copy a consistent span.

Samples are addressed by their absolute index since the buffer was created (``0`` is the
first sample ever written), not by their position in memory, so a reader asks for
``[start, start + n)`` and gets a copy, or learns that the span was overwritten or has not
arrived yet. Writing never moves existing samples (no ``np.roll``).
"""

from __future__ import annotations

import numpy as np


class SpanUnavailableError(LookupError):
    """A requested span is no longer held (overwritten) or not yet written."""

    def __init__(self, start: int, stop: int, first: int, end: int):
        self.start, self.stop, self.first, self.end = start, stop, first, end
        super().__init__(f"samples [{start}, {stop}) requested, buffer holds [{first}, {end})")


class RingBuffer:
    """``capacity`` rows of ``width`` values of ``dtype``, written in chunks.

    Parameters
    ----------
    capacity
        Rows kept; older rows are overwritten.
    width
        Values per row (channels); ``0`` makes a one-dimensional buffer.
    """

    def __init__(self, capacity: int, width: int = 0, dtype: type | np.dtype = np.float64):
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        shape = (capacity, width) if width else (capacity,)
        self._data = np.zeros(shape, dtype=dtype)
        self.capacity = capacity
        self.end = 0
        """Absolute index one past the newest row."""

    @property
    def first(self) -> int:
        """Absolute index of the oldest row still held."""
        return max(0, self.end - self.capacity)

    def write(self, rows: np.ndarray) -> None:
        """Append ``rows`` (``(n, width)`` or ``(n,)``); an over-long chunk keeps its tail."""
        n = len(rows)
        if n == 0:
            return
        if n > self.capacity:
            rows = rows[n - self.capacity :]
            self.end += n - self.capacity
            n = self.capacity
        start = self.end % self.capacity
        head = min(n, self.capacity - start)
        self._data[start : start + head] = rows[:head]
        if head < n:
            self._data[: n - head] = rows[head:]
        self.end += n

    def read(self, start: int, stop: int) -> np.ndarray:
        """A copy of rows ``[start, stop)``; raises :class:`SpanUnavailableError` if not held."""
        if start < self.first or stop > self.end or stop < start:
            raise SpanUnavailableError(start, stop, self.first, self.end)
        n = stop - start
        pos = start % self.capacity
        head = min(n, self.capacity - pos)
        if head == n:
            return self._data[pos : pos + n].copy()
        return np.concatenate([self._data[pos:], self._data[: n - head]])

    def last(self) -> np.ndarray | float:
        """The newest row (raises :class:`SpanUnavailableError` when empty)."""
        return self.read(self.end - 1, self.end)[0]
