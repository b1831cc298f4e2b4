"""``neuroclip score``: a recorded session through the monitor's path, as fast as possible."""

from __future__ import annotations

import argparse
import re
import time
from pathlib import Path

_TOKEN = re.compile(r"[^A-Za-z0-9_.-]+")


def session_id_from(path: Path) -> str:
    """A plain-token session id from a file or folder name (``sub-01_ses-pre.xdf`` ...)."""
    stem = path.name.split(".")[0] if path.is_file() else path.name
    if path.is_dir() and path.name.startswith("ses-") and path.parent.name.startswith("sub-"):
        stem = f"{path.parent.name}_{path.name}"
    token = _TOKEN.sub("-", stem).strip("-._") or "session"
    return token[:64]


def run_score(args: argparse.Namespace) -> int:
    """Handler of ``neuroclip score``."""
    from models.bundle import DEFAULT_BUNDLE, load_bundle
    from models.io.output import require_new_file
    from models.io.sessions import read_session
    from streamer.messages import dumps
    from streamer.offline import OfflineScorer, WindowOptions

    out = require_new_file(args.out, "the score file")
    bundle = load_bundle(args.model or DEFAULT_BUNDLE)
    recording = read_session(args.path, nirs_unit=args.nirs_unit)
    options = WindowOptions(hop_s=args.hop, warmup_s=args.warmup, phase_s=args.phase)
    if args.smoothing is not None:
        options = WindowOptions(args.hop, args.warmup, args.smoothing, args.phase)
    scorer = OfflineScorer(bundle, options, threads=args.threads)
    session = args.session or session_id_from(args.path)
    started = time.perf_counter()
    records = scorer.score(recording, args.site, session)
    took = time.perf_counter() - started
    with out.open("x", encoding="utf-8") as handle:
        for record in records:
            handle.write(dumps(record) + "\n")
    blocks = [b for b in (recording.eeg, recording.nirs) if b is not None]
    duration = max(float(b.times[-1]) for b in blocks) - min(float(b.times[0]) for b in blocks)
    usable = sum(1 for r in records if r["usable"])
    print(
        f"scored {len(records)} window(s), {usable} usable, of {duration / 60:.1f} min in "
        f"{took:.1f} s ({duration / max(took, 1e-9):.0f}x real time); wrote {out}"
    )
    return 0
