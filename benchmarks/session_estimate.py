"""How the session estimate behaves on held-out simulated sessions of steady rest.

Simulates a cohort the default model never saw (its own seed), every session ``--minutes``
of resting baseline (no cue, no rTMS), scores each session through the monitor's own path
(:class:`streamer.offline.OfflineScorer`, which gives the same ``estimate`` fields as the
live monitor) and reports, per group of sessions:

- **stability**: how far the session estimate moves over the last five minutes (the largest
  distance from its final value), median and worst;
- **coverage**: the share of the last five minutes' windows whose 95 % interval covers the
  session's whole-session value (the final estimate);
- **separation**: the subject AUC (MA against HC) of the estimate after 1, 3 and 5 minutes
  and of the whole session, beside the AUC of the plain mean window score, the figure the
  evaluation reports per subject.

Run:  python benchmarks/session_estimate.py --subjects 8 --minutes 10 [--hop 2]
(the default hop is the monitor's). Figures go to docs/benchmarks.md with the machine.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from scipy.stats import rankdata

from contract.settings import load_config
from models.bundle import DEFAULT_BUNDLE, load_bundle
from models.io import BidsDataset
from models.simulation.bids_writer import write_cohort
from models.simulation.config import SimulationConfig
from streamer.offline import OfflineScorer, WindowOptions

RECENT_S = 300.0


def simulate(out: Path, subjects: int, minutes: float, seed: int, cues: bool) -> Path:
    """A resting-only cohort: no cue block fits (a block longer than the session) and no
    rTMS, so every window after the warm-up is baseline; with ``cues`` the simulator's own
    protocol (a baseline, then drug and neutral cue blocks)."""
    rest = {"protocol.cue_block_s": 100_000.0, "protocol.baseline_s": minutes * 60}
    cfg = load_config(
        SimulationConfig,
        None,
        name="simulate",
        environ={},
        overrides={
            "cohort.ma": subjects,
            "cohort.hc": subjects,
            "cohort.minutes": minutes,
            "cohort.seed": seed,
            **({} if cues else rest),
        },
    )
    return write_cohort(out / "cohort", cfg)


def trajectory(records: list[dict]) -> list[tuple[float, dict]]:
    """``(window end, session estimate)`` of every window after the first usable one."""
    return [
        (r["window"]["end"], r["estimate"]["session"])
        for r in records
        if r.get("estimate") and r["estimate"].get("session")
    ]


def at(track: list[tuple[float, dict]], seconds: float) -> dict | None:
    """The estimate ``seconds`` after the first window."""
    t0 = track[0][0]
    before = [e for t, e in track if t - t0 <= seconds]
    return before[-1] if before else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subjects", type=int, default=8, help="per group")
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--seed", type=int, default=777)
    parser.add_argument("--hop", type=float, default=None, help="monitor hop (default: its own)")
    parser.add_argument(
        "--cues", action="store_true", help="the simulator's protocol with cues, not rest only"
    )
    args = parser.parse_args()
    bundle = load_bundle(DEFAULT_BUNDLE)
    scorer = OfflineScorer(bundle, WindowOptions(hop_s=args.hop))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        root = simulate(Path(tmp), args.subjects, args.minutes, args.seed, args.cues)
        print(f"simulated {2 * args.subjects} subjects in {time.perf_counter() - started:.0f} s")
        ds = BidsDataset(root)
        for subject in ds.subjects:
            session = ds.sessions(subject)[0].session
            records = scorer.score(ds.read(subject, session), "bench", f"{subject}-{session}")
            track = trajectory(records)
            final = track[-1][1]["probability"]
            t_end = track[-1][0]
            last = [e for t, e in track if t > t_end - RECENT_S]
            usable = [r["score"] for r in records if r["score"] is not None]
            rows.append(
                {
                    "subject": subject,
                    "group": ds.group(subject),
                    "final": final,
                    "moved": max(abs(e["probability"] - final) for e in last),
                    "covered": np.mean([e["low"] <= final <= e["high"] for e in last]),
                    "width_end": track[-1][1]["high"] - track[-1][1]["low"],
                    "at": {m: at(track, 60 * m)["probability"] for m in (1, 3, 5)},
                    "mean_score": float(np.mean(usable)),
                }
            )
    labels = np.array([r["group"] == "MA" for r in rows], float)

    def auc(values: list[float]) -> float:
        ranks = rankdata(values)  # Mann-Whitney: ties count half
        n_pos, n_neg = labels.sum(), (1 - labels).sum()
        return float((ranks[labels == 1].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))

    print(
        f"hop {scorer.options.hop_s or bundle.signal_params.windows.hop_s} s; "
        f"{len(rows)} sessions of {args.minutes:g} min of "
        f"{'baseline and cues' if args.cues else 'rest'}; seed {args.seed}"
    )
    moved = [r["moved"] for r in rows]
    print(f"moved over the last 5 min: median {statistics.median(moved):.3f}, max {max(moved):.3f}")
    covered = [r["covered"] for r in rows]
    print(
        f"interval covers the whole-session value: median {statistics.median(covered):.0%} "
        f"of the last 5 min's windows, lowest {min(covered):.0%}"
    )
    widths = [r["width_end"] for r in rows]
    print(f"interval width at the end: median {statistics.median(widths):.2f}")
    for m in (1, 3, 5):
        print(f"subject AUC of the estimate after {m} min: {auc([r['at'][m] for r in rows]):.3f}")
    print(f"subject AUC of the whole-session estimate: {auc([r['final'] for r in rows]):.3f}")
    print(f"subject AUC of the mean window score:     {auc([r['mean_score'] for r in rows]):.3f}")
    hc_range = bundle.meta["reference"].get("hc_session", {})
    within = [r for r in rows if r["final"] <= hc_range.get("p95", float("inf"))]
    print(f"healthy-control range of session estimates (bundle): {hc_range}")
    for group in ("MA", "HC"):
        n = sum(r["group"] == group for r in rows)
        print(f"{group}: {sum(r['group'] == group for r in within)} of {n} ended within it")
    for r in rows:
        print(
            f"  {r['subject']} {r['group']}: final {r['final']:.3f} moved {r['moved']:.3f} "
            f"covered {r['covered']:.0%} at 3 min {r['at'][3]:.3f}"
        )


if __name__ == "__main__":
    main()
