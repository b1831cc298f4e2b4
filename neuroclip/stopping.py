"""A clean stop on Ctrl-C or SIGTERM for the commands that stream until stopped.

``neuroclip record`` and ``neuroclip simulate --live`` run until a duration or a signal. Ctrl-C
(SIGINT) and SIGTERM (``docker stop``, systemd, ``kill``) both ask for a clean stop: the
command finishes what it is writing (an XDF file's footers, the outlets' last samples) and
exits 0. A second signal while stopping raises :class:`KeyboardInterrupt`, so a stop that
hangs can still be cut short.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator
from types import FrameType

_Handler = Callable[[int, FrameType | None], object] | int | signal.Handlers | None

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
"""The signals that ask for a clean stop."""


@contextlib.contextmanager
def stop_on_signals() -> Iterator[threading.Event]:
    """An event set by the first SIGINT or SIGTERM while the block runs; the handlers that
    were there before are restored after it (main thread only, as Python's signals are)."""
    stopping = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        if stopping.is_set():
            raise KeyboardInterrupt
        stopping.set()

    previous: dict[signal.Signals, _Handler] = {}
    for sig in STOP_SIGNALS:
        previous[sig] = signal.getsignal(sig)
        signal.signal(sig, on_signal)
    try:
        yield stopping
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
