"""``neuroclip monitor``: load the configuration and the bundle, then run the live monitor."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

from neuroclip.broker_url import broker_overrides

logger = logging.getLogger(__name__)

_SWITCH_INTERVAL_S = 0.0005


def run_monitor(args: argparse.Namespace) -> int:
    """Handler of ``neuroclip monitor``."""
    from contract.settings import load_config
    from models.bundle import DEFAULT_BUNDLE, load_bundle
    from streamer.config import MonitorConfig
    from streamer.monitor import Monitor

    overrides: dict[str, object] = {}
    for key, value in (
        ("site", args.site),
        ("session", args.session),
        ("duration_s", args.duration),
        ("model.bundle", args.model),
        ("log.dir", args.log_dir),
    ):
        if value is not None:
            overrides[key] = value
    if args.broker:
        overrides.update(broker_overrides(args.broker, "mqtt"))
        overrides["mqtt.enabled"] = True
    if args.no_mqtt:
        overrides["mqtt.enabled"] = False
    cfg = load_config(MonitorConfig, args.config, name="monitor", overrides=overrides)
    bundle = load_bundle(cfg.model.bundle or DEFAULT_BUNDLE)
    # the reader threads, the event loop and the inference thread share the GIL: a short
    # switch interval bounds how long a thread with data waits for it (Python's is 5 ms)
    sys.setswitchinterval(_SWITCH_INTERVAL_S)
    result = asyncio.run(Monitor(cfg, bundle).run())
    print(
        f"monitor stopped: {result.windows} window(s), {result.usable} usable; "
        f"session log {result.log_path}"
    )
    return 0
