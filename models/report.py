"""A self-contained HTML report of an evaluation (figures embedded as PNG, no network).

The report reads the dictionary :func:`models.evaluation.cross_validate` or ``neuroclip
evaluate --model`` returns. It titles its figures by what they are (held-out folds of a
cross-validation, or one bundle scored on a dataset), gives every figure with several series
a legend, and puts a visible warning on every figure and figure of merit that rests on too
few subjects (the thresholds of :mod:`models.evaluation`, stated in the report). The "Run"
table says how, on what and when the report was made, with which package versions.

The figures need matplotlib (it comes with the ``train`` extra); without it the report keeps
every table and says that the figures were left out, so ``neuroclip evaluate --model`` runs
on ONNX Runtime alone.
"""

from __future__ import annotations

import base64
import html
import io
from typing import Any

import numpy as np

from models.evaluation import (
    MIN_CRAVING_SUBJECTS,
    MIN_RTMS_PAIRS,
    MIN_SUBJECTS_PER_GROUP,
    roc_points,
)

LABELLED = ("pre", "none")
WARN_COLOUR = "#b35900"
THRESHOLDS_TEXT = (
    f"A figure or number resting on fewer than {MIN_SUBJECTS_PER_GROUP} subjects in either "
    f"group (AUC, ECE, a bundle's validation AUC), fewer than {MIN_RTMS_PAIRS} MA subjects "
    f"with pre and post sessions (rTMS shift) or fewer than {MIN_CRAVING_SUBJECTS} subjects "
    "with craving ratings (craving correlation) is marked &#9888; and carries a warning: "
    "with so few subjects one subject more or less moves it a long way."
)


def _png(fig: Any) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def _figure() -> tuple[Any, Any]:
    """A figure and its axes without pyplot (no global state, no display backend)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(4.5, 4.2))
    return fig, fig.add_subplot()


def _finish(fig: Any, text: str | None) -> tuple[str, str | None]:
    """The figure as PNG with its few-subject warning (if any) written under the axes,
    inside the image, and the warning for the page."""
    if text:
        fig.text(
            0.5,
            -0.02,
            "WARNING: " + text,
            ha="center",
            va="top",
            fontsize=7,
            color=WARN_COLOUR,
            wrap=True,
        )
    return _png(fig), text


def _few(metrics: dict[str, Any], key: str) -> bool:
    return bool(metrics.get("few_subjects", {}).get(key, False))


def _counts(metrics: dict[str, Any]) -> dict[str, int]:
    """Subjects per group with a labelled session (from the rows where a report lacks it)."""
    if "n_subjects" in metrics:
        return metrics["n_subjects"]
    rows = [r for r in metrics["sessions"] if r["rtms"] in LABELLED]
    return {g: len({r["subject"] for r in rows if r["group"] == g}) for g in ("MA", "HC")}


def is_bundle_report(report: dict[str, Any]) -> bool:
    """Whether ``report`` scores one bundle on a dataset (``evaluate --model``), rather than
    cross-validating models on held-out folds."""
    return report.get("evaluation") == "bundle" or (
        report.get("evaluation") is None and report.get("model") is not None
    )


def roc_title(report: dict[str, Any]) -> str:
    """The ROC figure's title: held-out folds for cross-validation, the bundle and the
    dataset for ``evaluate --model``."""
    if not is_bundle_report(report):
        cv = report.get("cv")
        return "Subject-level ROC, held-out folds" + (f" ({cv}-fold CV)" if cv else "")
    name = report.get("model_name") or next(iter(report["by_model"]))
    own = " (not held out)" if report.get("warning") else ""
    return f"Subject-level ROC of bundle {name}\nscored on this dataset{own}"


def _roc_figure(report: dict[str, Any]) -> tuple[str, str | None]:
    fig, ax = _figure()
    few = []
    for name, metrics in report["by_model"].items():
        rows = [r for r in metrics["sessions"] if r["rtms"] in LABELLED]
        y = np.array([r["group"] == "MA" for r in rows])
        scores = np.array([r["score"] for r in rows], dtype=float)
        if len(set(y.tolist())) < 2 or not np.all(np.isfinite(scores)):
            continue
        fpr, tpr = roc_points(y, scores)
        n = _counts(metrics)
        auc = "n/a" if metrics.get("auc") is None else f"{metrics['auc']:.2f}"
        ax.plot(
            fpr,
            tpr,
            drawstyle="steps-post",
            label=f"{name} (AUC {auc}; {n['MA']} MA, {n['HC']} HC)",
        )
        if _few(metrics, "auc"):
            few.append(f"{n['MA']} MA and {n['HC']} HC")
    ax.plot([0, 1], [0, 1], color="grey", lw=0.8, ls="--", label="chance")
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title=roc_title(report))
    ax.legend(fontsize=6, loc="lower right")
    return _finish(
        fig,
        f"few subjects: the AUC rests on {few[0]} subjects "
        f"(fewer than {MIN_SUBJECTS_PER_GROUP} per group)"
        if few
        else None,
    )


def _shift_figure(metrics: dict[str, Any], name: str) -> tuple[str, str | None]:
    fig, ax = _figure()
    pairs = [v for v in metrics["rtms_shift"]["subjects"].values() if "pre" in v and "post" in v]
    for i, values in enumerate(pairs):
        ax.plot(
            [0, 1],
            [values["pre"], values["post"]],
            marker="o",
            color="tab:red",
            alpha=0.6,
            label="MA subject, pre to post" if i == 0 else None,
        )
    hc = [r["score"] for r in metrics["sessions"] if r["group"] == "HC"]
    if hc:
        ax.axhspan(
            np.percentile(hc, 10),
            np.percentile(hc, 90),
            color="tab:green",
            alpha=0.15,
            label="HC sessions, 10-90th pct",
        )
    if not pairs:
        ax.text(
            0.5,
            0.5,
            "no MA subject with pre and post sessions",
            ha="center",
            transform=ax.transAxes,
            fontsize=8,
        )
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7)
    ax.set(
        xticks=[0, 1],
        xticklabels=["pre rTMS", "post rTMS"],
        xlim=(-0.2, 1.2),
        ylabel="session score",
        title=f"MA subjects before and after rTMS ({name})\n"
        f"{len(pairs)} MA subjects with both sessions",
    )
    return _finish(
        fig,
        f"few subjects: {len(pairs)} MA subjects with pre and post sessions "
        f"(fewer than {MIN_RTMS_PAIRS})"
        if _few(metrics, "rtms_shift")
        else None,
    )


def _craving_figure(metrics: dict[str, Any], name: str) -> tuple[str, str | None]:
    fig, ax = _figure()
    series = {
        ("MA", False): ("tab:red", "o", "MA, pre or no rTMS"),
        ("MA", True): ("tab:red", "s", "MA, post rTMS"),
        ("HC", False): ("tab:green", "o", "HC"),
        ("HC", True): ("tab:green", "s", "HC, post rTMS"),
    }
    points: dict[tuple[str, bool], list[tuple[float, float]]] = {}
    for r in metrics["sessions"]:
        if r["craving"] is not None:
            points.setdefault((r["group"], r["rtms"] == "post"), []).append(
                (r["craving"], r["score"])
            )
    for key in (k for k in series if k in points):
        xy = points[key]
        colour, marker, label = series[key]
        x, y = zip(*xy, strict=True)
        ax.scatter(x, y, color=colour, marker=marker, s=22, label=f"{label} ({len(xy)})")
    if points:
        ax.legend(fontsize=7)
    else:
        ax.text(
            0.5,
            0.5,
            "no session with a craving rating",
            ha="center",
            transform=ax.transAxes,
            fontsize=8,
        )
    c = metrics["craving"]
    title = f"Craving vs score ({name})"
    if c.get("spearman_r") is not None:
        title += f"\nSpearman r={c['spearman_r']:.2f}, p={c['p']:.2g}, n={c['n']} sessions"
    ax.set(xlabel="craving (VAS 0-100)", ylabel="session score", title=title)
    n = metrics.get("n_subjects", {}).get("craving", "?")
    return _finish(
        fig,
        f"few subjects: {n} subjects with craving ratings (fewer than {MIN_CRAVING_SUBJECTS})"
        if _few(metrics, "craving")
        else None,
    )


def _figures(report: dict[str, Any], headline: str) -> str:
    """The three figures, each with its few-subject warning as a caption; a note without
    matplotlib."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return (
            '<p class="note">Figures left out: matplotlib is not installed (it comes with the '
            "train extra: bash scripts/setup.sh train). The tables above hold every number."
            "</p>"
        )
    metrics = report["by_model"][headline]
    parts = []
    for alt, (src, warning) in (
        ("ROC", _roc_figure(report)),
        ("rTMS shift", _shift_figure(metrics, headline)),
        ("craving", _craving_figure(metrics, headline)),
    ):
        caption = (
            f'<figcaption class="warn">&#9888; {html.escape(warning)}</figcaption>'
            if warning
            else ""
        )
        parts.append(f'<figure><img alt="{alt}" src="{src}">{caption}</figure>')
    return '<div class="figures">' + "".join(parts) + "</div>"


def _fmt(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.3g}"
    return html.escape(str(value))


def _flag(value: Any, few: bool) -> str:
    """A value, marked when it rests on too few subjects."""
    text = _fmt(value)
    return f'<span class="warn" title="too few subjects">{text} &#9888;</span>' if few else text


def _model_rows(report: dict[str, Any]) -> str:
    rows = []
    for name, m in report["by_model"].items():
        n = _counts(m)
        few_auc, few_shift = _few(m, "auc"), _few(m, "rtms_shift")
        few_crav = _few(m, "craving")
        rows.append(
            f"<tr><td>{html.escape(name)}</td><td>{n['MA']} / {n['HC']}</td>"
            f"<td>{_flag(m['auc'], few_auc)}</td><td>{_flag(m['window_auc'], few_auc)}</td>"
            f"<td>{_flag(m['rtms_shift']['mean_delta'], few_shift)}</td>"
            f"<td>{_flag(m['rtms_shift']['p'], few_shift)}</td>"
            f"<td>{_flag(m['craving']['spearman_r'], few_crav)}</td>"
            f"<td>{_flag(m['craving']['p'], few_crav)}</td>"
            f"<td>{_flag(m.get('ece'), few_auc)}</td></tr>"
        )
    return "".join(rows)


def _table(rows: list[tuple[str, str]]) -> str:
    """A two-column table of already escaped cells."""
    body = "".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in rows)
    return f'<table class="kv">{body}</table>'


def _run_info(report: dict[str, Any]) -> dict[str, Any]:
    """The run record; built from the report's own fields where it has none (a report of
    :func:`models.evaluation.cross_validate` called directly)."""
    if report.get("run"):
        return report["run"]
    return {
        "evaluation": report.get("evaluation"),
        "cv": report.get("cv"),
        "seed": report.get("seed"),
        "data_fingerprint": report.get("data_fingerprint"),
        "n_subjects": report.get("n_subjects"),
        "n_windows": report.get("n_windows"),
        "n_windows_excluded": report.get("n_windows_excluded"),
        "duration_s": report.get("total_seconds"),
        "model": {"path": report.get("model"), "sha256": report.get("model_sha256")}
        if report.get("model")
        else None,
    }


def run_table(report: dict[str, Any]) -> str:
    """The "Run" section's table: evaluation kind, folds, seed, data and its fingerprint,
    start, end and duration, the model (for ``--model``) and package versions."""
    run = _run_info(report)
    bundle = is_bundle_report(report)
    rows: list[tuple[str, str]] = [
        (
            "evaluation",
            "one bundle scored on every subject of the dataset"
            if bundle
            else "subject-wise cross-validation (every model trained without the subjects "
            "it scores)",
        ),
        (
            "cv (folds)",
            "none: the bundle was trained elsewhere, no folds" if bundle else _fmt(run.get("cv")),
        ),
        (
            "seed",
            _fmt(run.get("seed"))
            + (" (the bundle's training seed; scoring draws no random numbers)" if bundle else ""),
        ),
    ]
    if run.get("data"):
        rows.append(("data", f"<code>{html.escape(str(run['data']))}</code>"))
    rows += [
        ("data fingerprint", f"<code>{_fmt(run.get('data_fingerprint'))}</code>"),
        (
            "subjects / windows used / windows excluded",
            f"{_fmt(run.get('n_subjects'))} / {_fmt(run.get('n_windows'))} / "
            f"{_fmt(run.get('n_windows_excluded'))}",
        ),
        ("started (UTC)", _fmt(run.get("started"))),
        ("finished (UTC)", _fmt(run.get("finished"))),
        (
            "duration",
            "n/a" if run.get("duration_s") is None else f"{float(run['duration_s']):.1f} s",
        ),
    ]
    model = run.get("model") or {}
    for key, label in (
        ("name", "model name"),
        ("path", "model path"),
        ("sha256", "model sha256"),
        ("code_version", "model code version"),
        ("created", "model created"),
        ("training_data_fingerprint", "model's training data fingerprint"),
    ):
        if model.get(key) is not None:
            value = html.escape(str(model[key]))
            rows.append(
                (label, f"<code>{value}</code>" if "sha" in key or "finger" in key else value)
            )
    versions = run.get("versions") or {}
    if versions:
        rows.append(
            (
                "package versions",
                ", ".join(f"{html.escape(k)} {html.escape(str(v))}" for k, v in versions.items()),
            )
        )
    return _table(rows)


def _bundle_section(report: dict[str, Any]) -> str:
    """For ``--model``: what the bundle records about its own validation, with warnings."""
    bundle = report.get("bundle")
    if not bundle:
        return ""
    rows = "".join(
        f"<tr><td>{html.escape(f['figure'])}</td><td>{_flag(f['value'], f['few_subjects'])}</td>"
        f"<td>{_fmt(f['subjects'])}</td></tr>"
        for f in bundle.get("figures", [])
    )
    table = (
        "<table><tr><th>figure recorded in the bundle</th><th>value</th><th>subjects</th></tr>"
        f"{rows}</table>"
        if rows
        else "<p>The bundle records no validation figures.</p>"
    )
    notes = "".join(f"<li>{html.escape(w)}</li>" for w in bundle.get("warnings", []))
    warn = f'<ul class="note">{notes}</ul>' if notes else ""
    passed = bundle.get("validation_passed")
    verdict = "" if passed is None else f"<p>Validation passed: {'yes' if passed else 'no'}.</p>"
    return f"<h2>The bundle's own validation</h2>{table}{verdict}{warn}"


def render_html(report: dict[str, Any], title: str | None = None) -> str:
    """The report as one self-contained HTML page (``title`` defaults by evaluation kind)."""
    bundle = is_bundle_report(report)
    headline = "fusion" if "fusion" in report["by_model"] else next(iter(report["by_model"]))
    if title is None:
        title = f"NeuroCLIP evaluation of bundle {headline}" if bundle else "NeuroCLIP evaluation"
    per_model = {name: m.get("warnings", []) for name, m in report["by_model"].items()}
    shared = set.intersection(*map(set, per_model.values())) if len(per_model) > 1 else set()
    notes = "".join(  # a warning every model shares is listed once
        f"<li><b>every model</b>: {html.escape(w)}</li>"
        for w in dict.fromkeys(w for ws in per_model.values() for w in ws)
        if w in shared
    )
    notes += "".join(
        f"<li><b>{html.escape(name)}</b>: {html.escape(w)}</li>"
        for name, ws in per_model.items()
        for w in ws
        if w not in shared
    )
    notes += "".join(
        f"<li><b>bundle</b>: {html.escape(w)}</li>"
        for w in (report.get("bundle") or {}).get("warnings", [])
    )
    warnings = f'<h2>Warnings</h2><ul class="note">{notes}</ul>' if notes else ""
    top = ""
    if report.get("warning"):
        top = f'<p class="note warn">&#9888; {html.escape(report["warning"])}</p>'
    ablation = ""
    if report.get("ablation"):
        ablation = (
            "<h2>Ablation (fusion variants, subject-level AUC)</h2>"
            "<table><tr><th>variant</th><th>AUC</th></tr>"
            + "".join(
                f"<tr><td>{html.escape(k)}</td><td>{_fmt(v)}</td></tr>"
                for k, v in report["ablation"].items()
            )
            + "</table>"
        )
    if bundle:
        heading = f"Bundle {html.escape(headline)} scored on this dataset"
        scope = (
            "One bundle scored on every subject of this dataset: no folds, no retraining. It is "
            "a held-out estimate only if none of these subjects was in its training data."
        )
    else:
        heading = "Models (held-out subjects, subject-wise cross-validation)"
        scope = (
            "Every model was trained in each fold without the subjects it scores; the figures "
            "pool the held-out folds."
        )
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}}
table{{border-collapse:collapse;margin:1em 0}}
td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right}}
td:first-child,th:first-child{{text-align:left}}img{{border:1px solid #eee}}
table.kv td{{text-align:left}}table.kv th{{background:#f4f4f4}}
.figures{{display:flex;flex-wrap:wrap}}figure{{margin:4px;max-width:520px}}
.warn{{color:{WARN_COLOUR};font-weight:bold}}
.note{{background:#fff6e0;padding:8px;border-left:4px solid #e0a000}}</style></head><body>
<h1>{html.escape(title)}</h1>
<p class="note">Research software, not a medical device. Scores on synthetic data say how the
method behaves, not how it would perform in patients.</p>
{top}<h2>{heading}</h2>
<p>{scope}</p>
<table><tr><th>model</th><th>subjects MA / HC</th><th>subject AUC</th><th>window AUC</th>
<th>rTMS mean &Delta;</th><th>rTMS p (Wilcoxon)</th><th>craving Spearman r</th>
<th>craving p</th><th>session ECE</th></tr>{_model_rows(report)}</table>
<p>Session scores are session estimates: the mean window logit through the session-level
calibration (models/session_estimate.py).</p>
<p>{THRESHOLDS_TEXT}</p>
{warnings}{_figures(report, headline)}{_bundle_section(report)}{ablation}
<h2>Run</h2>{run_table(report)}
</body></html>"""
