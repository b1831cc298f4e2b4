"""Generalisation across a family of cohorts from two independent generators.

Every default of the model is to be judged here, not on one simulator: cohorts vary the cue
design (blocks or short event-related cues with jittered gaps, with or without ``rest``
markers), the montage and device rates, the effect size, modality-leaning patients, nuisance
levels and cohort sizes, and come from two generators that share no code for how signals
are formed (``models.simulation``, ours; ``models.literature_sim``, written afresh from the
literature). ``--split dev`` cohorts are the ones defaults may be chosen on; ``--split
heldout`` cohorts are for reporting only.

For each cohort the script runs ``neuroclip evaluate``'s cross-validation
(:func:`models.evaluation.cross_validate`) and writes one JSON line per cohort with every
model's subject AUC, session ECE, rTMS shift p and craving Spearman p, and a Markdown table
with the mean and spread over the cohorts.

    python benchmarks/generalisation.py --split heldout --work /tmp/gen --out gen.jsonl

Cohorts are generated once into ``--work`` and reused. Timing: about 3-8 minutes per cohort
on 2 CPU cores (generation plus a 5-fold evaluation).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

# name -> (generator, knobs). ``ours`` knobs are SimulationConfig overrides (dotted keys);
# ``literature`` knobs are LiteratureCohortConfig fields.
COHORTS: dict[str, dict[str, tuple[str, dict[str, Any]]]] = {
    "dev": {
        "ours-default": ("ours", {"cohort.seed": 101, "cohort.minutes": 5.0}),
        "lit-event-lean": (
            "literature",
            {"seed": 201, "design": "event", "effect": 1.5, "leaning": 0.5, "rest_markers": False},
        ),
        "lit-block": (
            "literature",
            {"seed": 202, "design": "block", "nirs_sfreq": 10.0, "eeg_sfreq": 500.0},
        ),
    },
    "heldout": {
        "ours-weak-noisy": (
            "ours",
            {
                "cohort.seed": 111,
                "cohort.minutes": 5.0,
                "effects.theta_gain": 0.3,
                "effects.alpha_loss": 0.25,
                "effects.beta_gain": 0.25,
                "effects.hbo_drug_um": 0.5,
                "nuisance.line_uv": 8.0,
                "nuisance.bad_nirs_pairs": 4,
            },
        ),
        "lit-event-strong": (
            "literature",
            {"seed": 301, "design": "event", "effect": 2.0, "leaning": 0.7, "nuisance": 1.5},
        ),
        "lit-block-12hz": (
            "literature",
            {
                "seed": 302,
                "design": "block",
                "effect": 1.5,
                "nirs_sfreq": 12.5,
                "eeg_sfreq": 1000.0,
                "ma": 12,
                "hc": 12,
            },
        ),
        "lit-event-weak-28": (
            "literature",
            {"seed": 303, "design": "event", "effect": 1.0, "ma": 14, "hc": 14, "minutes": 4.0},
        ),
    },
}


def generate(name: str, generator: str, knobs: dict[str, Any], work: Path) -> Path:
    """The cohort's BIDS root in ``work``, generated unless it is there already."""
    root = work / name
    done = root / "derivatives" / ("simulation" if generator == "ours" else "literature_sim")
    if done.is_dir():  # ground truth is written last: the cohort is complete
        return root
    if root.exists():  # a run stopped part-way: start this cohort again
        import shutil

        shutil.rmtree(root)
    if generator == "ours":
        from contract.settings import load_config
        from models.simulation.bids_writer import write_cohort
        from models.simulation.config import SimulationConfig

        cfg = load_config(SimulationConfig, None, name="simulate", overrides=knobs, environ={})
        return write_cohort(root, cfg)
    from models.literature_sim import LiteratureCohortConfig, write_literature_cohort

    return write_literature_cohort(root, LiteratureCohortConfig(**knobs))


VARIANTS = {"default": None, "never": "never", "stack": "stack", "gate": "gate"}
"""Fusion recipes to compare on the development cohorts (``--variant``)."""


def evaluate(
    root: Path, cv: int, seed: int, cache: Path, variant: str, fusion_only: bool
) -> dict[str, Any]:
    """Cross-validate every model on one cohort; the figures that go into the table."""
    from dataclasses import replace

    from models.dataset import load_windows
    from models.evaluation import cross_validate
    from models.train_config import TrainConfig

    cfg = replace(TrainConfig(), seed=seed, threads=2)
    if VARIANTS[variant] is not None:
        cfg = replace(cfg, deep_in_score=VARIANTS[variant])
    ws = load_windows(root, cfg.signal, hop_s=cfg.train_hop_s, cache_dir=cache)
    started = time.perf_counter()
    deep = ("fusion",) if fusion_only else ("fusion", "eeg", "nirs")
    report = cross_validate(ws, cfg, cv, deep_models=deep)
    out: dict[str, Any] = {"seconds": time.perf_counter() - started, "models": {}}
    for model, m in report["by_model"].items():
        out["models"][model] = {
            "auc": m["auc"],
            "ece": m["ece"],
            "rtms_p": m["rtms_shift"]["p"],
            "rtms_delta": m["rtms_shift"]["mean_delta"],
            "craving_r": m["craving"]["spearman_r"],
            "craving_p": m["craving"]["p"],
            "collapsed": m["collapsed"],
            "deep_kept_folds": m.get("deep_part_kept_in_folds"),
            "warnings": len(m["warnings"]),
        }
    out["n_subjects"] = report["n_subjects"]
    return out


def table(rows: list[dict[str, Any]]) -> str:
    """Markdown: subject AUC per cohort and model, then mean and standard deviation."""
    models = list(dict.fromkeys(k for r in rows for k in r["result"]["models"]))
    head = "| cohort | " + " | ".join(models) + " | fusion ECE | rTMS p | craving p |"
    lines = [head, "|" + "---|" * (len(models) + 4)]
    for row in rows:
        m = row["result"]["models"]
        cells = [_num(m.get(k, {}).get("auc"), ".2f") for k in models]
        f = m.get("fusion", {})
        lines.append(
            f"| {row['cohort']} | "
            + " | ".join(cells)
            + f" | {_num(f.get('ece'), '.3f')} | {_p(f.get('rtms_p'))} | {_p(f.get('craving_p'))} |"
        )
    means = []
    for k in models:
        aucs = [r["result"]["models"].get(k, {}).get("auc") for r in rows]
        aucs = [a for a in aucs if a is not None]  # a missing AUC is left out, not 0.5
        means.append(f"{np.mean(aucs):.2f} ({np.std(aucs):.2f})" if aucs else "n/a")
    lines.append("| **mean (sd)** | " + " | ".join(means) + " | | | |")
    return "\n".join(lines)


def _num(value: float | None, fmt: str) -> str:
    return "n/a" if value is None else format(value, fmt)


def _p(p: float | None) -> str:
    return "n/a" if p is None else f"{p:.2g}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--split", choices=["dev", "heldout", "all"], default="heldout")
    parser.add_argument("--only", nargs="*", help="cohort names to run (default: the split)")
    parser.add_argument("--work", type=Path, default=Path("/tmp/neuroclip-generalisation"))
    parser.add_argument("--out", type=Path, default=Path("generalisation.jsonl"))
    parser.add_argument("--cv", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--variant",
        choices=list(VARIANTS),
        default="default",
        help="how the deep part enters the fused score (TrainConfig.deep_in_score): the "
        "configured default, never, the aligned embedding stacked, or deep heads behind the "
        "validation gate",
    )
    parser.add_argument(
        "--fusion-only", action="store_true", help="train only the fused deep model"
    )
    args = parser.parse_args()
    splits = ["dev", "heldout"] if args.split == "all" else [args.split]
    chosen = {n: c for s in splits for n, c in COHORTS[s].items()}
    if args.only:
        chosen = {n: c for n, c in chosen.items() if n in args.only}
    args.work.mkdir(parents=True, exist_ok=True)
    rows = []
    for name, (generator, knobs) in chosen.items():
        t0 = time.perf_counter()
        root = generate(name, generator, knobs, args.work)
        made = time.perf_counter() - t0
        result = evaluate(
            root, args.cv, args.seed, args.work / "cache", args.variant, args.fusion_only
        )
        row = {"cohort": name, "generator": generator, "knobs": knobs, "generate_s": made}
        row["variant"] = args.variant
        row["result"] = result
        rows.append(row)
        with args.out.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(row) + "\n")
        aucs = {k: v["auc"] for k, v in result["models"].items()}
        print(name, json.dumps(aucs), f"{result['seconds']:.0f} s", flush=True)
    if rows:
        print(table(rows))


if __name__ == "__main__":
    main()
