"""Run the dashboard: the MQTT feed in its thread, the Dash app on waitress.

waitress is a production WSGI server (Flask's own server says it is for development only);
the page binds to ``http.host``, 127.0.0.1 unless configured.
"""

from __future__ import annotations

import logging
import signal

from contract.errors import NeuroclipError
from dashboard.app import create_app
from dashboard.config import DashboardConfig
from dashboard.feed import BrokerFeed
from dashboard.store import SnapshotStore

logger = logging.getLogger(__name__)


def serve(cfg: DashboardConfig) -> None:
    """Serve until interrupted (Ctrl-C or SIGTERM); the feed is always stopped."""
    from waitress import create_server

    store = SnapshotStore(cfg.broker.topic_root)
    feed = BrokerFeed(cfg.broker, store)
    app = create_app(cfg, store, feed.state)
    try:
        server = create_server(
            app.server,
            host=cfg.http.host,
            port=cfg.http.port,
            threads=cfg.http.threads,
            ident="neuroclip-dashboard",
        )
    except OSError as exc:
        raise NeuroclipError(
            f"Cannot serve the dashboard on {cfg.http.host}:{cfg.http.port}: "
            f"{exc.strerror or exc}.",
            fix="stop what uses that port, or choose another with --port "
            "(or http.port in the configuration).",
        ) from None
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    feed.start()
    url = f"http://{cfg.http.host}:{cfg.http.port}/"
    logger.info("dashboard on %s, reading %s", url, cfg.broker.url())
    print(f"NeuroCLIP dashboard: {url} (broker {cfg.broker.url()}); Ctrl-C stops it", flush=True)
    try:
        server.run()
    finally:
        server.close()
        feed.stop()


def _exit_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(0)
