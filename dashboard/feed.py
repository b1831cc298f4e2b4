"""The dashboard's one MQTT client: subscribes to ``<topic_root>/#`` and feeds the store.

paho-mqtt runs its network loop in its own thread and reconnects by itself with a capped
backoff, so a broker that goes away and comes back needs nothing from anyone. What the
page needs to say about it (connected or not, since when, the last error) is kept in
:class:`FeedState`. The session is clean: after a reconnect the broker resends the retained
status and summary of every session, and new scores follow. Scores published while the
dashboard itself was away are not replayed; the monitor's session log is the record.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from dataclasses import dataclass

import paho.mqtt.client as mqtt

from dashboard.config import BrokerConfig
from dashboard.store import SnapshotStore

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class FeedSnapshot:
    """The broker connection as the page shows it."""

    url: str
    connected: bool
    since_unix: float
    """When ``connected`` last changed (or the feed started)."""
    error: str | None
    messages: int
    ignored: int


class FeedState:
    """Thread-safe connection state written by paho's thread, read by page callbacks."""

    def __init__(self, url: str):
        self._lock = threading.Lock()
        self._url = url
        self._connected = False
        self._since = time.time()
        self._error: str | None = None

    def set(self, connected: bool, error: str | None = None) -> None:
        """Record a connection change (``error`` says why it failed or dropped)."""
        with self._lock:
            if connected != self._connected:
                self._since = time.time()
            self._connected = connected
            self._error = error

    def snapshot(self, store: SnapshotStore) -> FeedSnapshot:
        """A copy with the store's message counts."""
        with self._lock:
            return FeedSnapshot(
                self._url, self._connected, self._since, self._error, store.received, store.ignored
            )


class BrokerFeed:
    """Subscribe to every session on one broker and fold the messages into ``store``."""

    def __init__(self, cfg: BrokerConfig, store: SnapshotStore):
        self.cfg = cfg
        self.store = store
        self.state = FeedState(cfg.url())
        client_id = f"neuroclip-dashboard-{socket.gethostname()}-{os.getpid()}"[:64]
        self._client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=True
        )
        if cfg.username is not None:
            self._client.username_pw_set(cfg.username, cfg.secret())
        if (context := cfg.tls_context()) is not None:
            self._client.tls_set_context(context)
        self._client.reconnect_delay_set(1, max(1, round(cfg.reconnect_max_s)))
        self._client.on_connect = self._on_connect
        self._client.on_connect_fail = self._on_connect_fail
        self._client.on_disconnect = self._on_disconnect
        self._client.on_message = self._on_message

    def start(self) -> None:
        """Connect in the background; an unreachable broker is retried, not fatal."""
        self._client.connect_async(self.cfg.host, self.cfg.port, keepalive=10)
        self._client.loop_start()

    def stop(self) -> None:
        """Disconnect and end the network thread."""
        self._client.disconnect()
        self._client.loop_stop()

    # ------------------------------------------------------------ paho's thread

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            self.state.set(False, f"refused: {reason_code}")
            logger.warning("broker %s refused the connection: %s", self.cfg.url(), reason_code)
            return
        client.subscribe(f"{self.cfg.topic_root}/#", qos=1)
        self.state.set(True)
        logger.info("connected to %s, subscribed to %s/#", self.cfg.url(), self.cfg.topic_root)

    def _on_connect_fail(self, client, userdata) -> None:
        self.state.set(False, None)  # the banner already says unreachable

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        error = None if reason_code == 0 else str(reason_code)
        self.state.set(False, error)
        logger.warning("lost the broker %s (%s); reconnecting", self.cfg.url(), error or "closed")

    def _on_message(self, client, userdata, message) -> None:
        self.store.ingest(message.topic, message.payload)
