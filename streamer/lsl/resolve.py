"""Finding a stream and opening an inlet on it: one way for the monitor and the recorder.

A :class:`pylsl.ContinuousResolver` looks in the background and is polled every
:data:`POLL_S`, so a caller notices a stop or its deadline within a tenth of a second; a
one-shot ``resolve_bypred`` can block well past its timeout (``benchmarks/lsl_resolve.py``
measures both). An outlet found but gone before its inlet opens is skipped and looked for
again.
"""

from __future__ import annotations

import logging
import socket
import threading
import time

logger = logging.getLogger(__name__)

POLL_S = 0.1
OPEN_TIMEOUT_S = 5.0


def on_this_machine(hostname: str) -> bool:
    """Whether the stream's outlet runs on this machine, on this clock: its measured clock
    offset is then only the measurement's noise (microseconds), and is taken as 0, by the
    monitor and the recorder alike, so a recording beside the monitor has its timestamps."""
    return hostname == socket.gethostname()


def open_inlet(
    predicate: str,
    label: str,
    stop: threading.Event,
    *,
    deadline: float | None = None,
    max_buflen: int = 360,
):
    """``(inlet, info)`` for the first stream matching ``predicate`` (an XPath predicate as
    ``resolve_bypred`` takes), opened, with its full info; ``None`` once ``stop`` is set or
    ``time.monotonic()`` passes ``deadline`` (``None``: no deadline)."""
    import pylsl
    from pylsl.util import LostError
    from pylsl.util import TimeoutError as LslTimeoutError

    resolver = pylsl.ContinuousResolver(pred=predicate)
    tried: set[str] = set()
    while not stop.is_set():
        if deadline is not None and time.monotonic() >= deadline:
            return None
        infos = [i for i in resolver.results() if i.uid() not in tried]
        if not infos:
            stop.wait(POLL_S)
            continue
        inlet = pylsl.StreamInlet(infos[0], max_buflen=max_buflen, recover=False)
        try:
            inlet.open_stream(timeout=OPEN_TIMEOUT_S)
            info = inlet.info(timeout=OPEN_TIMEOUT_S)
        except (LostError, LslTimeoutError) as exc:
            tried.add(infos[0].uid())  # an outlet that just went away: not again
            logger.warning(
                "%s stream found but could not be opened (%s); looking again",
                label,
                type(exc).__name__,
            )
            continue
        return inlet, info
    return None
