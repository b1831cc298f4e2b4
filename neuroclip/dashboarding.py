"""``neuroclip dashboard``: load the configuration and serve the live dashboard."""

from __future__ import annotations

import argparse

from neuroclip.broker_url import broker_overrides


def run_dashboard(args: argparse.Namespace) -> int:
    """Handler of ``neuroclip dashboard``."""
    from contract.settings import load_config
    from dashboard.config import DashboardConfig
    from dashboard.server import serve

    overrides: dict[str, object] = {
        "http.host": args.host,
        "http.port": args.port,
        "sessions_dir": str(args.sessions_dir) if args.sessions_dir else None,
    }
    if args.broker:
        overrides.update(broker_overrides(args.broker, "broker"))
    cfg = load_config(DashboardConfig, args.config, name="dashboard", overrides=overrides)
    serve(cfg)
    return 0
