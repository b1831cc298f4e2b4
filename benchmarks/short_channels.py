"""Short-channel regression on or off: the drug-cue HbO effect and the MA vs HC AUC.

A cohort is simulated with short-separation channels (``short_channels.enabled``: one
detector 8 mm from each source and a scalp haemodynamic signal, cue-evoked part included,
in the short pairs and in the long pairs from the same source; docs/simulation.md), written
as BIDS and read back, then windowed twice by the project's own path
(:func:`models.dataset.load_windows`, i.e. :func:`models.pipeline.recording.session_windows`)
with ``NirsParams.short_channel_regression`` True and False. Everything else is the
default :class:`~models.train_config.TrainConfig`; nothing is tuned.

Reported per arm (regression on, off):

1. The drug-cue HbO effect of each subject's labelled session (``pre`` or ``none``): the mean
   HbO of its usable drug-cue windows minus that of its neutral-cue windows, over the long
   pairs the coupling gate kept (a window is a drug-cue window when the drug cue regressor,
   the HRF-convolved cue, averages over 0.5 in it and the neutral one under 0.1; and the
   other way round). Summarised as the MA vs HC Cohen's d and Welch t, and the agreement
   (correlation, mean absolute error) with the simulated **cortical** effect: the
   simulator's cortical cue response alone, through the same fNIRS chain and the same
   windows. The scalp's own cue-locked part (what the regression should remove) is
   reported the same way, and so are the session means of the model's own drug minus
   neutral features, HbO and HbR (``feature d``: MA vs HC Cohen's d).
2. The subject-level AUC, MA vs HC, of the hand-crafted references (fusion, EEG-only,
   fNIRS-only) cross-validated by subject with :func:`models.evaluation.cross_validate`
   (the deep models are not trained: ``deep_models=()``), for each of ``--cv-seeds`` (fold
   and model seed): the mean and the range. Both arms get the same folds; each fold's model,
   its ``C`` and feature subset included, is chosen on its training subjects only. The
   effect of (1) used directly as a score (nothing fitted) gives a second AUC.

Scenarios: ``scalp-cue`` (the default scalp signal: systemic waves, slow scalp fluctuations
and a cue-evoked scalp response whose size differs between drug and neutral cues per
subject, independently of group) and ``no-scalp-cue`` (the same without the cue-evoked
scalp response). The cortical signal is the same in both.

    python benchmarks/short_channels.py --out short_channels.json

Cohorts are generated once into ``--work`` and reused, windows cached beside them. Timing:
about 10 minutes on 2 CPU cores for the defaults (2 scenarios of 16 MA + 16 HC, 6-minute
sessions, 4 folds, 3 fold seeds); ``--scenarios scalp-cue --cv-seeds 0`` takes about 3.
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

SCENARIOS: dict[str, dict[str, Any]] = {
    "scalp-cue": {},
    "no-scalp-cue": {"short_channels.scalp_cue_um": 0.0},
}
"""Scenario name -> SimulationConfig overrides on top of the cohort's."""

FEATURES = {
    "hbo": "nirs:mean_hbo:drug_minus_neutral",
    "hbr": "nirs:mean_hbr:drug_minus_neutral",
}
"""The hand-crafted features closest to the effect: per window, the drug minus neutral beta
of a ridge regression of the mean HbO (HbR) on the cue regressors (:mod:`models.features`)."""
DRUG_ON, OTHER_OFF = 0.5, 0.1
"""A drug (neutral) window: that cue's regressor averages above DRUG_ON, the other's below
OTHER_OFF."""


def cohort_overrides(args: argparse.Namespace, scenario: str) -> dict[str, Any]:
    """The SimulationConfig overrides of one scenario's cohort."""
    return {
        "cohort.ma": args.ma,
        "cohort.hc": args.hc,
        "cohort.minutes": args.minutes,
        "cohort.seed": args.seed,
        "short_channels.enabled": True,
        **SCENARIOS[scenario],
    }


def generate(root: Path, overrides: dict[str, Any]):
    """The cohort's configuration, and its BIDS root, generated unless it is there already."""
    from contract.settings import load_config
    from models.simulation.bids_writer import write_cohort
    from models.simulation.config import SimulationConfig

    cfg = load_config(SimulationConfig, None, name="simulate", overrides=overrides, environ={})
    if (root / "derivatives" / "simulation").is_dir():  # written last: the cohort is complete
        return cfg, root
    if root.exists():
        import shutil

        shutil.rmtree(root)
    return cfg, write_cohort(root, cfg)


def train_config(regression: bool, seed: int):
    """The default training configuration with the regression on or off."""
    from models.train_config import TrainConfig

    cfg = replace(TrainConfig(), seed=seed, threads=2)
    nirs = replace(cfg.signal.nirs, short_channel_regression=regression)
    return replace(cfg, signal=replace(cfg.signal, nirs=nirs))


def labelled_rows(ws) -> np.ndarray:
    """Usable windows of the labelled sessions (``pre`` or ``none``)."""
    from models.dataset import LABELED_SESSIONS

    return ws.usable & np.isin(ws.rtms, LABELED_SESSIONS)


def cue_windows(context: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Drug-cue and neutral-cue windows from their ``(N, 2, S)`` cue regressors."""
    drug, neutral = context[:, 0].mean(axis=1), context[:, 1].mean(axis=1)
    return (drug > DRUG_ON) & (neutral < OTHER_OFF), (neutral > DRUG_ON) & (drug < OTHER_OFF)


def window_hbo(nirs: np.ndarray) -> np.ndarray:
    """Mean HbO of each window ``(N, 2 * n_pairs, S)`` over the pairs the gate kept."""
    hbo = nirs[:, 0::2, :].astype(float)
    kept = np.any(hbo != 0.0, axis=2)  # a pair zeroed by the coupling gate is all zeros
    sums = hbo.mean(axis=2).sum(axis=1)
    return np.divide(sums, kept.sum(axis=1), out=np.full(len(sums), np.nan), where=kept.any(1))


def measured_effects(ws) -> dict[str, dict[str, Any]]:
    """Per subject: drug minus neutral window HbO of the labelled session, in uM, and the
    session means of the model's own drug minus neutral features (:data:`FEATURES`)."""
    rows = labelled_rows(ws)
    drug, neutral = cue_windows(ws.context)
    hbo = window_hbo(ws.nirs)
    features = {k: ws.features[:, ws.feature_names.index(f)] for k, f in FEATURES.items()}
    out = {}
    for subject in ws.subjects:
        mine = rows & (ws.subject == subject)
        d, n = hbo[mine & drug], hbo[mine & neutral]
        out[subject] = {
            "group": "MA" if ws.group[mine][0] else "HC",
            "session": str(ws.session[mine][0]),
            "effect_um": float(np.nanmean(d) - np.nanmean(n)) if d.size and n.size else None,
            **{f"feature_{k}": float(v[mine].mean()) for k, v in features.items()},
            "drug_windows": int(d.size),
            "neutral_windows": int(n.size),
        }
    return out


def simulated_effects(ws, cfg) -> dict[str, dict[str, float]]:
    """Per subject: the same drug minus neutral measure on the simulator's cortical cue
    response alone and on the scalp's cue-locked part alone (long pairs not poorly coupled),
    in the windows of ``ws``.

    Each part goes through the project's fNIRS chain as a haemoglobin stream (the same
    band-pass and the same causal resampler, whose FIR delays the model-rate output by
    2 s at 10 Hz), and a window takes the model-rate samples up to its end, as the pipeline
    cuts them: simulated and measured windows hold the same stretch of the session."""
    from models.preprocessing import NirsChain
    from models.signals import NirsLayout
    from models.simulation.bids_writer import sessions_of
    from models.simulation.montage import nirs_pairs
    from models.simulation.session import SessionSimulator
    from models.simulation.subject import draw_cohort

    params = train_config(True, 0).signal
    window_s, rate = params.windows.window_s, params.nirs.target_sfreq
    rows = labelled_rows(ws)
    drug, neutral = cue_windows(ws.context)
    out = {}
    for subject in draw_cohort(cfg):
        session = sessions_of(subject)[0]  # pre or base: the labelled one
        sim = SessionSimulator(
            subject,
            "none" if session == "base" else session,
            cfg.cohort.minutes * 60.0,
            cfg,
            with_rtms_block=cfg.cohort.rtms_in_sessions,
            session_index=0,
        )
        gen, scalp = sim.nirs, sim.nirs.scalp
        pairs = [p for p in nirs_pairs() if p.name not in subject.bad_pairs]
        good = np.array([p.name not in subject.bad_pairs for p in nirs_pairs()])
        layout = NirsLayout.from_labels(
            [f"{p.name} {kind}" for p in pairs for kind in ("hbo", "hbr")],
            np.repeat([p.distance_m for p in pairs], 2),
        )
        parts = {"cortical": (gen.task_hbo, -gen.hbr_ratio)}
        if scalp is not None:
            source_gain = scalp.cue_weights[scalp.long_map] * scalp.long_coupling
            parts["scalp"] = (scalp.gain * np.outer(scalp.cue, source_gain), -scalp.HBR_RATIO)
        mine = rows & (ws.subject == subject.subject)
        t_end = ws.t_end[mine]
        out[subject.subject] = {}
        for name, (hbo, hbr_ratio) in parts.items():
            hb = np.stack([hbo[:, good], hbr_ratio * hbo[:, good]], axis=2).reshape(len(hbo), -1)
            model_rate = NirsChain(params.nirs, cfg.nirs_sfreq, layout)(hb).hb[:, 0::2].mean(1)
            t = np.arange(len(model_rate)) / rate
            means = np.array([model_rate[(t > e - window_s) & (t <= e)].mean() for e in t_end])
            effect = means[drug[mine]].mean() - means[neutral[mine]].mean()
            out[subject.subject][f"{name}_um"] = float(effect)
    return out


def cohen_d(a: np.ndarray, b: np.ndarray) -> float | None:
    """Cohen's d of two groups with the pooled standard deviation (None: no spread)."""
    pooled = np.sqrt(
        ((len(a) - 1) * a.var(ddof=1) + (len(b) - 1) * b.var(ddof=1)) / (len(a) + len(b) - 2)
    )
    return float((a.mean() - b.mean()) / pooled) if pooled > 0 else None


def effect_summary(subjects: dict[str, dict[str, Any]], key: str) -> dict[str, Any]:
    """MA vs HC statistics of one per-subject effect, and its AUC used as the score itself
    (nothing fitted)."""
    from sklearn.metrics import roc_auc_score

    rows = [(s["group"] == "MA", s[key]) for s in subjects.values() if s.get(key) is not None]
    y = np.array([r[0] for r in rows], int)
    x = np.array([r[1] for r in rows], float)
    ma, hc = x[y == 1], x[y == 0]
    spread = ma.std(ddof=1) > 0 and hc.std(ddof=1) > 0
    welch = stats.ttest_ind(ma, hc, equal_var=False) if spread else None
    return {
        "ma_mean": float(ma.mean()),
        "ma_sd": float(ma.std(ddof=1)),
        "hc_mean": float(hc.mean()),
        "hc_sd": float(hc.std(ddof=1)),
        "ma_vs_hc_d": cohen_d(ma, hc),
        "ma_vs_hc_t": None if welch is None else float(welch.statistic),
        "ma_vs_hc_p": None if welch is None else float(welch.pvalue),
        "auc_as_score": float(roc_auc_score(y, x)) if spread else None,
    }


def agreement(subjects: dict[str, dict[str, Any]], key: str, truth: str) -> dict[str, float]:
    """How a measured effect follows a simulated one across subjects."""
    pairs = np.array([(s[key], s[truth]) for s in subjects.values() if s[key] is not None])
    return {
        "r": float(np.corrcoef(pairs[:, 0], pairs[:, 1])[0, 1]),
        "mean_abs_error_um": float(np.abs(pairs[:, 0] - pairs[:, 1]).mean()),
        "mean_error_um": float((pairs[:, 0] - pairs[:, 1]).mean()),
    }


MODELS = ("handcrafted", "handcrafted_nirs", "handcrafted_eeg")


def run_scenario(args: argparse.Namespace, scenario: str) -> dict[str, Any]:
    """Generate (or reuse) one cohort and measure both arms on it."""
    from models.dataset import load_windows
    from models.evaluation import cross_validate

    started = time.perf_counter()
    name = f"{scenario}-seed{args.seed}-{args.ma}ma{args.hc}hc-{args.minutes:g}min"
    cfg, root = generate(args.work / name, cohort_overrides(args, scenario))
    result: dict[str, Any] = {"cohort": name, "generate_s": time.perf_counter() - started}
    result["arms"] = {}
    subjects: dict[str, dict[str, Any]] = {}
    for arm, regression in (("on", True), ("off", False)):
        tcfg = train_config(regression, args.cv_seeds[0])
        t0 = time.perf_counter()
        # one cache folder per cohort: the dataset fingerprint hashes the sizes of the data
        # files, not their contents, so two cohorts of one shape would share a cache name
        cache = args.work / "cache" / name
        ws = load_windows(root, tcfg.signal, hop_s=tcfg.train_hop_s, cache_dir=cache)
        windows_s = time.perf_counter() - t0
        for subject, row in measured_effects(ws).items():
            entry = subjects.setdefault(subject, {"group": row["group"]})
            entry[f"effect_{arm}_um"] = row["effect_um"]
            for kind in FEATURES:
                entry[f"feature_{kind}_{arm}"] = row[f"feature_{kind}"]
            entry[f"windows_{arm}"] = (row["drug_windows"], row["neutral_windows"])
        if arm == "on":
            for subject, truth in simulated_effects(ws, cfg).items():
                subjects[subject].update(truth)
        t0 = time.perf_counter()
        by_seed = {}
        for seed in args.cv_seeds:
            report = cross_validate(ws, replace(tcfg, seed=seed), args.cv, deep_models=())
            by_seed[seed] = {m: report["by_model"][m]["auc"] for m in MODELS}
        result["arms"][arm] = {
            "windows_s": windows_s,
            "cv_s": time.perf_counter() - t0,
            "n_windows": len(ws),
            "n_usable": int(ws.usable.sum()),
            "nirs_channels": len(ws.nirs_channels),
            "auc_by_cv_seed": by_seed,
            "auc": {m: _mean([a[m] for a in by_seed.values()]) for m in MODELS},
            "auc_min_max": {
                m: (_min([a[m] for a in by_seed.values()]), _max([a[m] for a in by_seed.values()]))
                for m in MODELS
            },
        }
    result["effect"] = {
        arm: {
            **effect_summary(subjects, f"effect_{arm}_um"),
            "vs_cortical": agreement(subjects, f"effect_{arm}_um", "cortical_um"),
            "feature": {k: effect_summary(subjects, f"feature_{k}_{arm}") for k in FEATURES},
        }
        for arm in ("on", "off")
    }
    result["effect"]["cortical_truth"] = effect_summary(subjects, "cortical_um")
    result["effect"]["scalp_cue_part"] = effect_summary(subjects, "scalp_um")
    result["subjects"] = subjects
    result["seconds"] = time.perf_counter() - started
    return result


def _mean(values: list[float | None]) -> float | None:
    kept = [v for v in values if v is not None]
    return float(np.mean(kept)) if kept else None


def _min(values: list[float | None]) -> float | None:
    kept = [v for v in values if v is not None]
    return float(min(kept)) if kept else None


def _max(values: list[float | None]) -> float | None:
    kept = [v for v in values if v is not None]
    return float(max(kept)) if kept else None


def table(results: dict[str, dict[str, Any]]) -> str:
    """Markdown: the drug-cue effect per scenario and arm, then the AUCs."""
    lines = [
        "| scenario | HbO drug - neutral | MA, uM (sd) | HC, uM (sd) | MA vs HC d (t) | "
        "AUC as score | r with cortical | MAE vs cortical, uM | feature d HbO / HbR |",
        "|" + "---|" * 9,
    ]
    labels = {
        "on": "regression on",
        "off": "regression off",
        "cortical_truth": "simulated cortical",
        "scalp_cue_part": "simulated scalp cue part",
    }
    for scenario, res in results.items():
        for arm, label in labels.items():
            e = res["effect"][arm]
            agree = e.get("vs_cortical", {})
            lines.append(
                f"| {scenario} | {label} | {e['ma_mean']:.3f} ({e['ma_sd']:.3f}) | "
                f"{e['hc_mean']:.3f} ({e['hc_sd']:.3f}) | {_num(e['ma_vs_hc_d'], '.2f')} "
                f"({_num(e['ma_vs_hc_t'], '.1f')}) | {_num(e['auc_as_score'], '.2f')} | "
                f"{_num(agree.get('r'), '.2f')} | {_num(agree.get('mean_abs_error_um'), '.3f')} | "
                f"{_feature_d(e, 'hbo')}{' / ' if 'feature' in e else ''}{_feature_d(e, 'hbr')} |"
            )
    lines += [
        "",
        "| scenario | regression | AUC hand-crafted | AUC fNIRS-only | AUC EEG-only |",
        "|---|---|---|---|---|",
    ]
    for scenario, res in results.items():
        for arm in ("on", "off"):
            a = res["arms"][arm]
            cells = [
                f"{_num(a['auc'][m], '.2f')} ({_num(a['auc_min_max'][m][0], '.2f')}-"
                f"{_num(a['auc_min_max'][m][1], '.2f')})"
                for m in MODELS
            ]
            lines.append(f"| {scenario} | {arm} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _feature_d(effect: dict[str, Any], kind: str) -> str:
    if "feature" not in effect:
        return ""
    return _num(effect["feature"][kind]["ma_vs_hc_d"], ".2f")


def _num(value: float | None, fmt: str) -> str:
    return "" if value is None else format(value, fmt)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="JSON file to write")
    parser.add_argument("--work", type=Path, default=Path("/tmp/neuroclip-short-channels"))
    parser.add_argument("--scenarios", nargs="*", choices=list(SCENARIOS), default=list(SCENARIOS))
    parser.add_argument("--ma", type=int, default=16)
    parser.add_argument("--hc", type=int, default=16)
    parser.add_argument("--minutes", type=float, default=6.0)
    parser.add_argument("--seed", type=int, default=404, help="cohort seed")
    parser.add_argument("--cv", type=int, default=4)
    parser.add_argument(
        "--cv-seeds",
        type=int,
        nargs="+",
        default=[0, 1, 2],
        help="fold and model seeds; the AUC is their mean (min-max in brackets)",
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    args.work.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    results = {}
    for scenario in args.scenarios:
        results[scenario] = run_scenario(args, scenario)
        arms = results[scenario]["arms"]
        aucs = {arm: {k: _num(v, ".2f") for k, v in a["auc"].items()} for arm, a in arms.items()}
        print(scenario, aucs, f"{results[scenario]['seconds']:.0f} s", flush=True)
    out = {
        "command": " ".join(["python", *sys.argv]),
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "machine": {
            "cpus": _cpus(),
            "processor": platform.processor(),
            "python": platform.python_version(),
        },
        "total_s": time.perf_counter() - started,
        "scenarios": results,
    }
    args.out.write_text(json.dumps(out, indent=1))
    print(table(results))
    print(f"total {out['total_s']:.0f} s; written to {args.out}")


def _cpus() -> int | None:
    import os

    return os.cpu_count()


if __name__ == "__main__":
    main()
