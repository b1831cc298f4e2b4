"""Finding a model's channels in whatever cap and probe a lab plugs in: one matcher for all.

The monitor, ``score``, ``replay`` and training pick the bundle's electrodes from a stream's
labels with :func:`pick_eeg`. A label matches exactly; failing that, ignoring case
(``FP1`` is ``Fp1``); failing that, by the 10-20 names the 10-10 system renamed (T3/T7,
T4/T8, T5/P7, T6/P8). Extra channels are ignored, so a 64-channel cap holding the model's
32 electrodes fits. A label that two channels would both match is refused rather than
picked at random.

fNIRS pairs are found by name in any order (:func:`fit_nirs`), and where a probe numbers its
sources and detectors differently, by the position of each pair's midpoint.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from contract.errors import ChannelError
from models.signals import NirsLayout

EEG_ALIASES: dict[str, str] = {"t3": "t7", "t4": "t8", "t5": "p7", "t6": "p8"}
"""Old 10-20 names and their 10-10 successors (lower case); matched in both directions."""
_BOTH_WAYS = {**EEG_ALIASES, **{new: old for old, new in EEG_ALIASES.items()}}


def _key(label: str) -> str:
    return label.strip().lower()


def match_eeg(needed: Sequence[str], offered: Sequence[str]) -> list[int | None]:
    """For each needed channel, the index of the offered channel that is it (``None``:
    not there). See the module docstring for the rules."""
    exact = {label: i for i, label in enumerate(offered)}
    folded: dict[str, list[int]] = {}
    for i, label in enumerate(offered):
        folded.setdefault(_key(label), []).append(i)
    out: list[int | None] = []
    for name in needed:
        if name in exact:
            out.append(exact[name])
            continue
        found = folded.get(_key(name)) or folded.get(_BOTH_WAYS.get(_key(name), ""), [])
        if len(found) > 1:
            raise ChannelError(
                f"EEG channel {name!r} matches several channels of the stream: "
                f"{', '.join(repr(offered[i]) for i in found)}.",
                fix="give every electrode one label (case and 10-20/10-10 aliases count as "
                "the same electrode).",
            )
        out.append(found[0] if found else None)
    return out


def pick_eeg(needed: Sequence[str], offered: Sequence[str], source: str) -> list[int]:
    """Indices into ``offered`` of the ``needed`` channels, in order.

    Raises
    ------
    ChannelError
        Naming ``source`` and every needed channel that is missing.
    """
    try:
        found = match_eeg(needed, offered)
    except ChannelError as exc:
        raise ChannelError(f"{source}: {exc.message}", fix=exc.fix) from None
    missing = [name for name, i in zip(needed, found, strict=True) if i is None]
    if missing:
        raise ChannelError(
            f"{source} lacks EEG channel(s) {', '.join(missing)} (matched ignoring case and "
            "the T3/T7, T4/T8, T5/P7, T6/P8 aliases); it has "
            f"{', '.join(offered[:12])}{'...' if len(offered) > 12 else ''}.",
            fix="connect or relabel those electrodes, or use a model trained on this montage.",
        )
    return [int(i) for i in found]  # type: ignore[arg-type]


POSITION_TOLERANCE_M = 0.01
"""A stream pair matches a model pair by position when their midpoints lie within this."""


@dataclass(frozen=True)
class NirsFit:
    """How a stream's fNIRS channels map onto a model's pairs."""

    columns: list[int]
    """Stream columns to keep, in order: the model's pairs (each with its wavelengths or
    chromophores), then the stream's short-separation channels."""
    layout: NirsLayout
    """The layout of those columns."""
    pair_names: list[str]
    """The stream's names of the model's pairs, in model order (what messages show)."""
    by: str
    """``name`` or ``position``: how the pairs were matched."""


def fit_nirs(
    model_pairs: Sequence[str],
    model_midpoints: np.ndarray | None,
    layout: NirsLayout,
    source: str,
) -> NirsFit:
    """Find the model's fNIRS pairs in a stream: by name, else by midpoint position.

    Every model pair must be found; extra long pairs are left out, short-separation ones
    kept (they feed the regression). Pairs are matched by name when every model pair's
    name is among the stream's long pairs (in any order); otherwise by position when both
    sides know their midpoints: each model pair takes the stream pair nearest it, which
    must lie within :data:`POSITION_TOLERANCE_M` and be nearest to no other model pair.

    Raises
    ------
    ChannelError
        Naming ``source`` and the model pairs that could not be found, and why.
    """
    pairs = layout.pairs()
    short = layout.short_mask()
    long_index = {name: k for k, (name, _) in enumerate(pairs) if not short[k]}
    if all(name in long_index for name in model_pairs):
        chosen, by = [long_index[name] for name in model_pairs], "name"
    else:
        chosen, by = (
            _by_position(model_pairs, model_midpoints, layout, long_index, source),
            "position",
        )
    keep = [*chosen, *np.flatnonzero(short).tolist()]
    columns = [c for k in keep for c in pairs[k][1]]
    return NirsFit(
        columns=columns,
        layout=layout.select(columns),
        pair_names=[pairs[k][0] for k in chosen],
        by=by,
    )


def _by_position(
    model_pairs: Sequence[str],
    model_midpoints: np.ndarray | None,
    layout: NirsLayout,
    long_index: dict[str, int],
    source: str,
) -> list[int]:
    missing = [name for name in model_pairs if name not in long_index]
    named = (
        f"{source} lacks fNIRS pair(s) {', '.join(missing[:8])}{'...' if len(missing) > 8 else ''}"
    )
    short_mask = layout.short_mask()
    short_names = {name for (name, _), s in zip(layout.pairs(), short_mask, strict=True) if s}
    if short := [name for name in missing if name in short_names]:
        named += f" ({', '.join(short[:4])} present, but as short-separation pairs: under 15 mm)"
    if not long_index:
        raise ChannelError(
            f"{named}; the stream has no long pair at all.",
            fix="check the distances the device sends (metres; short channels are under "
            "0.015), or use the montage the model was trained on.",
        )
    stream_midpoints = layout.pair_midpoints()
    if model_midpoints is None or stream_midpoints is None:
        side = "the model" if model_midpoints is None else "the stream"
        raise ChannelError(
            f"{named}, and {side} gives no optode positions to match them by.",
            fix="label the pairs as the model's (S<i>_D<j>), or give the stream's channel "
            "locations (desc/channels/channel/location, metres; SNIRF and NIRx files carry "
            "them) and use a model that stores its pairs' positions.",
        )
    candidates = list(long_index.values())
    points = stream_midpoints[candidates]
    distance = np.linalg.norm(model_midpoints[:, None, :] - points[None, :, :], axis=2)
    nearest = distance.argmin(axis=1)
    far = [
        f"{name} ({1000 * distance[i, nearest[i]]:.0f} mm)"
        for i, name in enumerate(model_pairs)
        if distance[i, nearest[i]] > POSITION_TOLERANCE_M
    ]
    taken = np.bincount(nearest, minlength=len(candidates))
    shared = [name for i, name in enumerate(model_pairs) if taken[nearest[i]] > 1]
    if far or shared:
        reason = (
            f"no stream pair within {1000 * POSITION_TOLERANCE_M:g} mm of " + ", ".join(far[:6])
            if far
            else f"pairs {', '.join(shared[:6])} share their nearest stream pair"
        )
        raise ChannelError(
            f"{named} by name; by optode position, {reason}.",
            fix="use the montage the model was trained on (same optode positions), or train "
            "a model for this one.",
        )
    return [candidates[j] for j in nearest]
