"""``neuroclip convert``: one recorded session into a BIDS dataset for training."""

from __future__ import annotations

import argparse


def run_convert(args: argparse.Namespace) -> int:
    """Read the recording, write it as ``sub-<subject>/ses-<session>`` under ``--bids``."""
    from models.io.bids_convert import convert_session, read_optodes
    from models.io.sessions import read_session

    recording = read_session(args.path, nirs_unit=args.nirs_unit)
    folder = convert_session(
        recording,
        args.bids,
        args.subject,
        args.session,
        group=args.group,
        rtms=args.rtms,
        craving=args.craving,
        optodes=read_optodes(args.optodes) if args.optodes else None,
        line_freq=args.line_freq,
    )
    print(f"wrote {folder} (EEG BrainVision, NIRS SNIRF, events; participants and sessions)")
    return 0
