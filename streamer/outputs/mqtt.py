"""MQTT output with aiomqtt: ordered QoS 1 scores, retained status as the last will.

Topics are ``<topic_root>/<site>/<session>/{score,status,quality,event,summary}``.
:class:`MqttPublisher` is an async context manager whose connection loop reconnects with
jittered exponential backoff. Messages wait in one bounded FIFO while the broker is
unreachable and leave in order once it is back; a full queue drops its oldest message and
counts it (the session log keeps every score regardless). A message leaves the queue only
after the broker acknowledged it (QoS 1), so a broken connection loses none: at worst one
is delivered twice, and consumers de-duplicate by ``seq``. Retained topics (``status``,
``summary``) keep only their latest payload and are sent first after every reconnect.
"""

from __future__ import annotations

import asyncio
import logging
import random
import socket
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from contract.messages import topic
from streamer.config import MqttConfig

logger = logging.getLogger(__name__)

_PUBLISH_TIMEOUT_S = 5.0
_CLOSE_TIMEOUT_S = 2.0
"""How long a clean stop waits for the final status to be acknowledged."""


@dataclass(frozen=True)
class Outbound:
    """One message waiting to be published."""

    kind: str
    payload: bytes
    qos: int


class MqttPublisher:
    """Publish to one session's topics; an async context manager."""

    def __init__(
        self,
        cfg: MqttConfig,
        site: str,
        session: str,
        offline_status: bytes,
        *,
        final_status: Callable[[], bytes] | None = None,
    ):
        """``offline_status`` is the last will (what the broker publishes if this process
        vanishes); ``final_status`` builds the retained status sent on a clean close, after
        the queue was drained, so it can tell what was delivered."""
        self.cfg = cfg
        self.site, self.session = site, session
        self._identifier = f"neuroclip-monitor-{site}-{session}"
        self._password = cfg.secret()
        self._offline = offline_status
        self._final_status = final_status
        self.undelivered = 0
        """Messages still queued when the publisher closed (set on close)."""
        self._queue: deque[Outbound] = deque()
        self._retained: dict[str, bytes] = {}
        self._retained_dirty: set[str] = set()
        self._wake = asyncio.Event()
        self._closing = False
        self._task: asyncio.Task | None = None
        self.connected = False
        self.sent = 0
        self.dropped = 0
        self.reconnects = 0
        self.last_error: str | None = None

    def topic(self, kind: str) -> str:
        """Full topic of ``kind`` (score, status, quality, event, summary)."""
        return topic(self.cfg.topic_root, self.site, self.session, kind)

    async def __aenter__(self) -> MqttPublisher:
        self._task = asyncio.create_task(self._run(), name="neuroclip-mqtt")
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        """Give the queue 2 s, then send the final status through the same publishing loop
        and let that loop end by itself: cancelling it mid-publish leaves aiomqtt futures
        whose errors asyncio prints as tracebacks at exit."""
        await self._drain(timeout_s=2.0)
        self.undelivered = len(self._queue)
        final = self._final_status() if self._final_status is not None else self._offline
        self.set_retained("status", final)
        self._closing = True
        self._wake.set()
        task, connected = self._task, self.connected
        if task is None:
            return
        if connected:
            await asyncio.wait({task}, timeout=_CLOSE_TIMEOUT_S)
        if not task.done():
            task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        if "status" in self._retained_dirty:
            logger.warning(
                "broker unreachable at stop: the final status was not published (the broker "
                "keeps the last will, which says the monitor vanished)"
            )

    async def _drain(self, timeout_s: float) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while (self._queue or self._retained_dirty) and self.connected and loop.time() < deadline:
            await asyncio.sleep(0.02)

    def enqueue(self, kind: str, payload: bytes, qos: int = 1) -> None:
        """Queue a message for ``kind``'s topic, in order; a full queue drops its oldest."""
        if len(self._queue) >= self.cfg.queue_max:
            self._queue.popleft()
            self.dropped += 1
        self._queue.append(Outbound(kind, payload, qos))
        self._wake.set()

    def set_retained(self, kind: str, payload: bytes) -> None:
        """Replace the retained payload of ``kind`` (status, summary); sent as soon as possible."""
        self._retained[kind] = payload
        self._retained_dirty.add(kind)
        self._wake.set()

    def snapshot(self) -> dict[str, object]:
        """Plain values for the status message."""
        return {
            "enabled": True,
            "connected": self.connected,
            "queued": len(self._queue),
            "dropped": self.dropped,
            "sent": self.sent,
            "reconnects": self.reconnects,
            "error": self.last_error,
        }

    def _client_kwargs(self) -> dict[str, object]:
        import aiomqtt

        kwargs: dict[str, object] = {
            "hostname": self.cfg.host,
            "port": self.cfg.port,
            "identifier": self._identifier,
            "keepalive": self.cfg.keepalive_s,
            "will": aiomqtt.Will(self.topic("status"), self._offline, qos=1, retain=True),
            "timeout": _PUBLISH_TIMEOUT_S,
            # scores are small: without TCP_NODELAY, Nagle's algorithm can hold one back
            "socket_options": [(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)],
        }
        if self.cfg.username is not None:
            kwargs["username"] = self.cfg.username
            kwargs["password"] = self._password
        if (context := self.cfg.tls_context()) is not None:
            kwargs["tls_context"] = context
        return kwargs

    async def _run(self) -> None:
        import aiomqtt

        delay = 0.2
        while True:
            client = aiomqtt.Client(**self._client_kwargs())
            try:
                async with client:
                    self.connected = True
                    if self.last_error is not None:
                        self.reconnects += 1
                        logger.info(
                            "MQTT broker %s:%d reachable again", self.cfg.host, self.cfg.port
                        )
                    self.last_error = None
                    self._retained_dirty.update(self._retained)
                    delay = 0.2
                    await self._publish_loop(client)
                    return  # closing: the final status went out; disconnect cleanly
            except aiomqtt.MqttError as exc:
                if self._closing:
                    return  # the final status is still unsent: __aexit__ says so
                if self.connected or self.last_error is None:
                    logger.warning(
                        "MQTT broker %s:%d unreachable (%s); %d message(s) queued, retrying",
                        self.cfg.host,
                        self.cfg.port,
                        exc,
                        len(self._queue),
                    )
                self.last_error = str(exc)
            finally:
                self.connected = False
                _read_disconnection(client)
            await asyncio.sleep(delay * (0.5 + random.random()))
            delay = min(self.cfg.reconnect_max_s, delay * 2)

    async def _publish_loop(self, client) -> None:
        while True:
            while self._retained_dirty:
                kind = next(iter(self._retained_dirty))
                payload = self._retained[kind]
                await client.publish(
                    self.topic(kind), payload, qos=1, retain=True, timeout=_PUBLISH_TIMEOUT_S
                )
                if self._retained.get(kind) is payload:
                    self._retained_dirty.discard(kind)
            if self._closing:
                return
            if self._queue:
                head = self._queue[0]
                await client.publish(
                    self.topic(head.kind), head.payload, qos=head.qos, timeout=_PUBLISH_TIMEOUT_S
                )
                if self._queue and self._queue[0] is head:
                    self._queue.popleft()
                self.sent += 1
                continue
            self._wake.clear()
            await self._wake.wait()


def _read_disconnection(client: object) -> None:
    """Mark the reason a connection broke as seen, once the connection is over.

    aiomqtt 2.x keeps an unexpected disconnection in a future that only its own waits read.
    When the connection breaks while a publish awaits its acknowledgement, the publish ends by
    its timeout and nothing reads that future; asyncio then prints it as a "Future exception
    was never retrieved" traceback when the client is collected, often as the process's very
    last line, after the stop summary. The loss was already logged by the reconnect loop.
    """
    disconnected = getattr(client, "_disconnected", None)
    if (
        isinstance(disconnected, asyncio.Future)
        and disconnected.done()
        and not disconnected.cancelled()
    ):
        disconnected.exception()
