"""``neuroclip monitor``: load the configuration and the bundle, then run the live monitor
(one room, or every room of a rooms file in one process)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from typing import TYPE_CHECKING

from neuroclip.broker_url import broker_overrides

if TYPE_CHECKING:
    from streamer.monitor import Monitor, MonitorResult
    from streamer.rooms import RoomOutcome, Rooms

logger = logging.getLogger(__name__)

_SWITCH_INTERVAL_S = 0.0005


def run_monitor(args: argparse.Namespace) -> int:
    """Handler of ``neuroclip monitor``."""
    from contract.errors import ConfigError
    from contract.settings import load_config
    from models.bundle import DEFAULT_BUNDLE, load_bundle
    from streamer.config import MonitorConfig
    from streamer.monitor import Monitor
    from streamer.rooms import is_rooms_file, load_rooms

    rooms = is_rooms_file(args.config)
    if rooms and (args.site or args.session):
        raise ConfigError(
            f"--site and --session name one room, and {args.config} lists several.",
            key="--site/--session",
            fix="set each room's site and session in the rooms file, or pass a one-room "
            "configuration.",
            path=args.config,
        )
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
    if rooms:
        configs = load_rooms(args.config, overrides=overrides)
    else:
        configs = [load_config(MonitorConfig, args.config, name="monitor", overrides=overrides)]
    bundle = load_bundle(configs[0].model.bundle or DEFAULT_BUNDLE)
    # the reader threads, the event loop and the inference thread share the GIL: a short
    # switch interval bounds how long a thread with data waits for it (Python's is 5 ms)
    sys.setswitchinterval(_SWITCH_INTERVAL_S)
    if not rooms:
        result = asyncio.run(_until_stopped(Monitor(configs[0], bundle)))
        print(result.line())
        return 0
    from streamer.rooms import Rooms

    runner = Rooms(configs, bundle)
    outcomes = asyncio.run(_until_stopped(runner))
    if len(outcomes) != len(configs):  # stopped while the model was still loading
        print(f"monitor stopped ({runner.stop_reason}) before the rooms started")
        return 0
    for cfg, outcome in zip(runner.configs, outcomes, strict=True):
        print(f"{cfg.site}/{cfg.session}: {outcome.result.line()}")
    failed = [o for o in outcomes if o.error is not None]
    return 1 if failed else 0


async def _until_stopped(monitor: Monitor | Rooms) -> MonitorResult | list[RoomOutcome]:
    """Run the monitor; Ctrl-C and SIGTERM (what ``docker stop`` and systemd send) both stop
    it cleanly: the window in flight is published, the final status and summary are sent,
    and the closing line says why it stopped."""
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    assert task is not None

    def stop(reason: str) -> None:
        monitor.request_stop(reason)
        task.cancel()

    for sig, reason in ((signal.SIGINT, "Ctrl-C"), (signal.SIGTERM, "SIGTERM")):
        loop.add_signal_handler(sig, stop, reason)
    try:
        return await monitor.run()
    except asyncio.CancelledError:
        if monitor.stop_reason is None:  # not one of ours: let it through
            raise
        return monitor.result()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
