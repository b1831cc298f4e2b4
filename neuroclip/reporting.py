"""``neuroclip report``: session logs in, one self-contained HTML page out."""

from __future__ import annotations

import argparse
from pathlib import Path


def _hc_range(model: Path | None, shas: set[str]) -> tuple[float, float] | None:
    """The healthy-control session range of ``model``, or of the committed default model
    when it is the one that scored the sessions (no range otherwise)."""
    from models.bundle import DEFAULT_BUNDLE, load_bundle
    from models.session_estimate import session_calibration

    bundle = load_bundle(model) if model is not None else load_bundle(DEFAULT_BUNDLE)
    if model is None and bundle.sha256 not in shas:
        return None
    return session_calibration(bundle.meta)[1]


def run_report(args: argparse.Namespace) -> int:
    """Handler of ``neuroclip report``."""
    from contract.errors import NeuroclipError
    from dashboard.report import build_report, read_logs

    records = read_logs(args.logs)
    shas = {sha for r in records for _, sha in r.models()}
    page = build_report(args.logs, _hc_range(args.model, shas))
    try:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(page, encoding="utf-8")
    except OSError as exc:
        raise NeuroclipError(
            f"Cannot write the report {args.out}: {exc.strerror or exc}.",
            fix="choose a writable --out path.",
        ) from None
    windows = sum(len(r.windows) for r in records)
    print(f"report of {len(records)} session(s), {windows} windows: {args.out}")
    return 0
