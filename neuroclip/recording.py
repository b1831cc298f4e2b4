"""``neuroclip record``: the live LSL streams to an XDF file, as LabRecorder records them.

Ctrl-C and SIGTERM both stop the recording cleanly (the file gets its stream footers) and
the command exits 0: stopping is the normal end of a recording without ``--duration``.
A second signal while stopping interrupts at once (exit 130); the file is still readable.
"""

from __future__ import annotations

import argparse
import logging

from neuroclip.stopping import stop_on_signals

_STREAM_SUFFIXES = {"eeg": "EEG", "nirs": "NIRS", "markers": "Markers"}


def seconds(text: str) -> float:
    """argparse type of ``--duration``: a positive number of seconds."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {text}")
    return value


def run_record(args: argparse.Namespace) -> int:
    """Handler of ``neuroclip record``."""
    from contract.settings import load_config
    from streamer.config import MonitorConfig
    from streamer.recorder import record

    overrides: dict[str, object] = {}
    for key, value in (("site", args.site), ("session", args.session)):
        if value is not None:
            overrides[key] = value
    if args.name_prefix:
        for role, suffix in _STREAM_SUFFIXES.items():
            overrides[f"streams.{role}.name"] = f"{args.name_prefix}-{suffix}"
    cfg = load_config(MonitorConfig, args.config, name="monitor", overrides=overrides)
    # the recorder's progress (late streams, losses, reconnections) is INFO: show it
    recorder_logger = logging.getLogger("streamer.recorder")
    recorder_logger.setLevel(min(logging.INFO, logging.getLogger().getEffectiveLevel()))
    with stop_on_signals() as stopping:
        totals = record(
            cfg,
            args.out,
            duration_s=args.duration,
            scores=not args.no_scores,
            should_stop=stopping.is_set,
            on_start=lambda text: print(text, flush=True),
        )
    if not totals.written:
        print("stopped before the streams were found; no file written")
        return 130
    counts = ", ".join(f"{name}: {n}" for name, n in totals.samples.items()) or "no stream"
    line = f"recorded {totals.duration_s:.1f} s to {totals.path} ({counts} samples)"
    if totals.reconnects:
        line += "; reconnected " + ", ".join(f"{k} x{n}" for k, n in totals.reconnects.items())
    print(line)
    return 0
