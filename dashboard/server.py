"""Run the dashboard: the MQTT feed in its thread, the Dash app on waitress.

waitress is a production WSGI server (Flask's own server says it is for development only);
the page binds to ``http.host``, 127.0.0.1 unless configured. The page's plotly.js is the
partial bundle in ``dashboard/assets/`` (see its README there), not the full one Dash ships.
"""

from __future__ import annotations

import logging
import re
import signal
from pathlib import Path

from contract.errors import NeuroclipError
from dashboard.app import ASSETS, create_app
from dashboard.config import DashboardConfig
from dashboard.feed import BrokerFeed
from dashboard.store import SnapshotStore

logger = logging.getLogger(__name__)
PLOTLY_BUNDLE = "plotly-neuroclip.min.js"
"""The partial plotly.js in the assets folder: Dash puts it on the page, so ``dcc.Graph``
uses it and never loads the full 4.8 MB ``plotly.min.js``."""


def plotly_bundle_mismatch(assets: Path = ASSETS) -> str | None:
    """Why the partial plotly.js bundle does not match the plotly Python package, or None.

    The figures are written by the plotly package for its own plotly.js version; a bundle
    of another version may draw them differently."""
    from plotly.offline import get_plotlyjs_version

    bundle = assets / PLOTLY_BUNDLE
    if not bundle.is_file():
        return None  # Dash then loads its own full plotly.js
    with bundle.open("rb") as f:
        found = re.search(rb"\) v(\d+\.\d+\.\d+\S*)", f.read(400))
    version, wanted = (found.group(1).decode() if found else "unknown"), get_plotlyjs_version()
    if version == wanted:
        return None
    return (
        f"{bundle} is plotly.js {version}, the plotly package writes figures for {wanted}: "
        "rebuild it with dashboard/assets/plotly-neuroclip.build.sh"
    )


def serve(cfg: DashboardConfig) -> None:
    """Serve until interrupted (Ctrl-C or SIGTERM); the feed is always stopped."""
    from waitress import create_server

    mismatch = plotly_bundle_mismatch()
    if mismatch:
        logger.warning(mismatch)
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
