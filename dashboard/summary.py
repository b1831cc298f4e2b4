"""Session summaries as comparisons: baseline against now, and pre- against post-treatment.

Both come from the monitors' retained summaries: version 2 carries session estimates (whole,
last five minutes, per part), compared here; version 1 only means of usable window scores
per phase, compared as before. Sessions are pseudonymous, so the two sessions of one
patient are found by a naming convention only: ids that end in ``pre`` or ``post`` after a
separator, with the same stem (``P012-pre`` and ``P012-post``, ``sub-07_ses-pre`` and
``sub-07_ses-post``), on any site. Nothing else links sessions; ids without the suffix get
no pre/post comparison.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

PART_NAMES = {
    "baseline": "baseline",
    "cue_drug": "drug cues",
    "cue_neutral": "neutral cues",
    "inter_train": "between trains",
    "post": "post-treatment",
}
"""How the page and the report name the parts of a session that have their own estimate
(``contract.messages.ESTIMATE_PARTS``)."""
UNCHANGED = 0.01
"""A change in mean score smaller than this is shown as unchanged (scores are rounded to
two decimals on the page)."""
_STAGED = re.compile(r"^(?P<stem>.+?)[-_.](?:ses-)?(?P<stage>pre|post)$", re.IGNORECASE)


def treatment_stage(session: str) -> tuple[str, str] | None:
    """``(stem, "pre" | "post")`` for a session id that follows the convention, else None."""
    match = _STAGED.match(session)
    if match is None:
        return None
    return match.group("stem").lower(), match.group("stage").lower()


@dataclass(frozen=True)
class Comparison:
    """Two mean scores, what they measure, and whether the change is toward healthy."""

    label: str
    before_name: str
    before: float
    after_name: str
    after: float
    measure: str
    """Which mean was compared (``baseline`` or ``all usable windows``)."""
    hc_median: float | None

    @property
    def change(self) -> float:
        """``after - before``."""
        return self.after - self.before

    @property
    def direction(self) -> str:
        """``toward`` or ``away from`` the healthy-control median, or ``unchanged`` (the
        distance moved by less than :data:`UNCHANGED`); ``relative to`` without a median."""
        if self.hc_median is None:
            return "relative to"
        moved = abs(self.before - self.hc_median) - abs(self.after - self.hc_median)
        if abs(moved) < UNCHANGED:
            return "unchanged relative to"
        return "toward" if moved > 0 else "away from"


def overall_mean(summary: dict | None) -> float | None:
    """Mean of every usable score of a session, from its per-phase means and counts."""
    if not summary:
        return None
    means, counts = summary.get("phase_means") or {}, summary.get("phase_counts") or {}
    pairs = [(means[p], counts.get(p, 0)) for p in means if means[p] is not None]
    total = sum(n for _, n in pairs)
    return sum(m * n for m, n in pairs) / total if total else None


def _estimate(summary: dict | None, which: str) -> float | None:
    """A session estimate from a version 2 summary: ``session``, ``recent`` or a part."""
    estimate = (summary or {}).get("estimate") or {}
    found = estimate.get(which) or (estimate.get("parts") or {}).get(which) or {}
    return found.get("probability")


def _hc_reference(summary: dict | None) -> float | None:
    """The middle of the healthy-control range of session estimates (version 2)."""
    band = ((summary or {}).get("estimate") or {}).get("hc_range")
    return (band[0] + band[1]) / 2 if band else None


def baseline_vs_now(
    summary: dict | None,
    hc_median: float | None,
    now: dict | None = None,
    baseline_now: dict | None = None,
) -> Comparison | None:
    """The session's baseline against now: the baseline's estimate against the estimate of
    the last five minutes (``now`` and ``baseline_now``, from the newest score, are fresher
    than the summary's); version 1 summaries compare mean window scores."""
    if not summary:
        return None
    baseline = (baseline_now or {}).get("probability") or _estimate(summary, "baseline")
    recent = (now or {}).get("probability") or _estimate(summary, "recent")
    if baseline is not None and recent is not None:
        return Comparison(
            "baseline vs now",
            "baseline",
            baseline,
            "last 5 min",
            recent,
            "session estimates",
            _hc_reference(summary),
        )
    baseline, recent = summary.get("baseline_mean"), summary.get("recent_mean")
    if baseline is None or recent is None:
        return None
    return Comparison(
        "baseline vs now", "baseline", baseline, "now", recent, "usable scores", hc_median
    )


def pre_vs_post(session_key: str, rows: list[dict]) -> Comparison | None:
    """Compare the pre- and post-treatment sessions of the patient of ``session_key``.

    ``rows`` are :meth:`dashboard.store.SnapshotStore.sessions` rows. The baselines are
    compared when both sessions have one, otherwise the means of all usable windows.
    """
    by_key = {row["key"]: row for row in rows}
    this = by_key.get(session_key)
    staged = treatment_stage(this["session"]) if this else None
    if staged is None:
        return None
    stem, _ = staged
    found: dict[str, dict] = {}
    for row in rows:
        other = treatment_stage(row["session"])
        if other is not None and other[0] == stem and row.get("summary"):
            found.setdefault(other[1], row)
    if "pre" not in found or "post" not in found:
        return None
    pre, post = found["pre"], found["post"]
    for part, measure in (("baseline", "baseline estimates"), ("session", "session estimates")):
        before, after = _estimate(pre["summary"], part), _estimate(post["summary"], part)
        if before is not None and after is not None:
            hc = _hc_reference(post["summary"]) or _hc_reference(pre["summary"])
            return Comparison("pre vs post", pre["key"], before, post["key"], after, measure, hc)
    pre_base, post_base = pre["summary"].get("baseline_mean"), post["summary"].get("baseline_mean")
    if pre_base is not None and post_base is not None:
        before, after, measure = pre_base, post_base, "baseline"
    else:
        before, after = overall_mean(pre["summary"]), overall_mean(post["summary"])
        measure = "all usable windows"
    if before is None or after is None:
        return None
    hc = post.get("hc_median") if post.get("hc_median") is not None else pre.get("hc_median")
    return Comparison("pre vs post", pre["key"], before, post["key"], after, measure, hc)
