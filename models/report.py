"""A self-contained HTML report of an evaluation (figures embedded as PNG, no network)."""

from __future__ import annotations

import base64
import html
import io
import json
from typing import Any

import numpy as np


def _png(fig) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def _roc_figure(report: dict[str, Any]) -> str:
    import matplotlib.pyplot as plt
    from sklearn.metrics import roc_curve

    fig, ax = plt.subplots(figsize=(4.5, 4.2))
    for name, metrics in report["by_model"].items():
        rows = [r for r in metrics["sessions"] if r["rtms"] in ("pre", "none")]
        y = [r["group"] == "MA" for r in rows]
        if len(set(y)) < 2:
            continue
        fpr, tpr, _ = roc_curve(y, [r["score"] for r in rows])
        ax.plot(fpr, tpr, label=f"{name} (AUC {metrics['auc']:.2f})")
    ax.plot([0, 1], [0, 1], color="grey", lw=0.8, ls="--")
    ax.set(
        xlabel="false positive rate",
        ylabel="true positive rate",
        title="Subject-level ROC, held-out folds",
    )
    ax.legend(fontsize=7, loc="lower right")
    return _png(fig)


def _shift_figure(metrics: dict[str, Any], name: str) -> str:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.5, 4.2))
    for values in metrics["rtms_shift"]["subjects"].values():
        if "pre" in values and "post" in values:
            ax.plot([0, 1], [values["pre"], values["post"]], marker="o", color="tab:red", alpha=0.6)
    hc = [r["score"] for r in metrics["sessions"] if r["group"] == "HC"]
    if hc:
        ax.axhspan(
            np.percentile(hc, 10),
            np.percentile(hc, 90),
            color="tab:green",
            alpha=0.15,
            label="HC sessions, 10-90th pct",
        )
        ax.legend(fontsize=7)
    ax.set(
        xticks=[0, 1],
        xticklabels=["pre rTMS", "post rTMS"],
        ylabel="session score",
        title=f"MA subjects before and after rTMS ({name})",
    )
    return _png(fig)


def _craving_figure(metrics: dict[str, Any], name: str) -> str:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.5, 4.2))
    colours = {"MA": "tab:red", "HC": "tab:green"}
    for r in metrics["sessions"]:
        if r["craving"] is not None:
            ax.scatter(
                r["craving"],
                r["score"],
                color=colours[r["group"]],
                marker="s" if r["rtms"] == "post" else "o",
                s=22,
            )
    c = metrics["craving"]
    title = f"Craving vs score ({name})"
    if c.get("spearman_r") is not None:
        title += f"\nSpearman r={c['spearman_r']:.2f}, p={c['p']:.2g}"
    ax.set(xlabel="craving (VAS 0-100)", ylabel="session score", title=title)
    return _png(fig)


def _fmt(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.3g}"
    return html.escape(str(value))


def render_html(report: dict[str, Any], title: str = "NeuroCLIP evaluation") -> str:
    """The report as one HTML page."""
    headline = "fusion" if "fusion" in report["by_model"] else next(iter(report["by_model"]))
    rows = "".join(
        f"<tr><td>{html.escape(name)}</td><td>{_fmt(m['auc'])}</td><td>{_fmt(m['window_auc'])}</td>"
        f"<td>{_fmt(m['rtms_shift']['mean_delta'])}</td><td>{_fmt(m['rtms_shift']['p'])}</td>"
        f"<td>{_fmt(m['craving']['spearman_r'])}</td><td>{_fmt(m['craving']['p'])}</td>"
        f"<td>{_fmt(m.get('ece'))}</td></tr>"
        for name, m in report["by_model"].items()
    )
    notes = "".join(
        f"<li><b>{html.escape(name)}</b>: {html.escape(w)}</li>"
        for name, m in report["by_model"].items()
        for w in m.get("warnings", [])
    )
    warnings = f'<h2>Warnings</h2><ul class="note">{notes}</ul>' if notes else ""
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
    meta = {
        k: report.get(k)
        for k in (
            "cv",
            "seed",
            "n_subjects",
            "n_windows",
            "n_windows_excluded",
            "data_fingerprint",
            "model",
            "total_seconds",
        )
    }
    figures = "".join(
        f'<img alt="{alt}" src="{src}">'
        for alt, src in (
            ("ROC", _roc_figure(report)),
            ("rTMS shift", _shift_figure(report["by_model"][headline], headline)),
            ("craving", _craving_figure(report["by_model"][headline], headline)),
        )
    )
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}}
table{{border-collapse:collapse;margin:1em 0}}
td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right}}
td:first-child,th:first-child{{text-align:left}}img{{margin:4px;border:1px solid #eee}}
.note{{background:#fff6e0;padding:8px;border-left:4px solid #e0a000}}</style></head><body>
<h1>{html.escape(title)}</h1>
<p class="note">Research software, not a medical device. Scores on synthetic data say how the
method behaves, not how it would perform in patients.</p>
<h2>Models (held-out subjects)</h2>
<table><tr><th>model</th><th>subject AUC</th><th>window AUC</th><th>rTMS mean &Delta;</th>
<th>rTMS p (Wilcoxon)</th><th>craving Spearman r</th><th>craving p</th>
<th>session ECE</th></tr>{rows}</table>
<p>Session scores are session estimates: the mean window logit through the session-level
calibration (models/session_estimate.py).</p>
{warnings}{figures}{ablation}
<h2>Run</h2><pre>{html.escape(json.dumps(meta, indent=1, default=str))}</pre>
</body></html>"""
