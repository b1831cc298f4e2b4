"""``neuroclip replay``: a recorded session as LSL outlets, in real time or faster."""

from __future__ import annotations

import argparse


def run_replay(args: argparse.Namespace) -> int:
    """Handler of ``neuroclip replay``."""
    from models.io.sessions import read_session
    from streamer.replay import ReplayNames, replay

    recording = read_session(args.path, nirs_unit=args.nirs_unit)
    if not args.no_model_check:
        _check_model(recording, args.model)
    totals = replay(
        recording,
        names=ReplayNames(args.name_prefix),
        speed=args.speed,
        loop=args.loop,
        wait_for_consumers_s=args.wait_consumers,
        on_start=lambda text: print(text, flush=True),
    )
    print(
        f"replayed {totals.eeg_samples} EEG and {totals.nirs_samples} NIRS samples and "
        f"{totals.markers} markers" + (f" ({totals.loops} loops)" if totals.loops else "")
    )
    return 0


def _check_model(recording, model) -> None:
    """Refuse, before any outlet opens, a recording the model (and so the monitor) cannot use."""
    from models.bundle import DEFAULT_BUNDLE, load_bundle
    from models.pipeline.compat import check_stream
    from models.pipeline.recording import describe_block
    from streamer.replay import require_signals

    bundle = load_bundle(model or DEFAULT_BUNDLE)
    for role, block in zip(("eeg", "nirs"), require_signals(recording), strict=True):
        check_stream(bundle, role, describe_block(block, role))
