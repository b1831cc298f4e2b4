"""Finding a model's EEG channels in whatever cap a lab plugs in: one matcher for all.

The monitor, ``score``, ``replay`` and training pick the bundle's electrodes from a stream's
labels with :func:`pick_eeg`. A label matches exactly; failing that, ignoring case
(``FP1`` is ``Fp1``); failing that, by the 10-20 names the 10-10 system renamed (T3/T7,
T4/T8, T5/P7, T6/P8). Extra channels are ignored, so a 64-channel cap holding the model's
32 electrodes fits. A label that two channels would both match is refused rather than
picked at random.
"""

from __future__ import annotations

from collections.abc import Sequence

from contract.errors import ChannelError

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
