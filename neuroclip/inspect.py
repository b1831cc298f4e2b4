"""``neuroclip inspect``: what a recording or dataset holds, in a few lines of text."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from models.io import BidsDataset, read_recording, require_duration, require_finite
from models.preprocessing.filters import StatefulSos, bandpass_sos
from models.preprocessing.nirs import NirsParams, OpticalDensity
from models.preprocessing.quality import scalp_coupling_index
from models.signals import Recording, SignalBlock


def _block_lines(block: SignalBlock, source: Path, window: float | None, strict: bool) -> list[str]:
    if window is not None:
        require_duration(block, window, source)
    if strict:
        require_finite(block, source)
    n_bad = int((~np.isfinite(block.data)).sum())
    line = (
        f"  {block.kind:5s} {block.name!r}: {len(block.ch_names)} ch, {block.sfreq:g} Hz, "
        f"{block.n_samples} samples ({block.duration_s:.1f} s)"
    )
    if n_bad:
        line += f", {n_bad} NaN/inf samples"
    if block.counter is not None:
        steps = np.diff(block.counter)
        line += f", counter gaps {int((steps > 1).sum())} repeats {int((steps < 1).sum())}"
    lines = [
        line,
        f"        channels: {', '.join(block.ch_names[:8])}"
        f"{' ...' if len(block.ch_names) > 8 else ''}",
    ]
    if (
        block.kind == "nirs"
        and block.nirs is not None
        and block.nirs.signal != "hb"
        and block.sfreq > 3.2
        and n_bad == 0
    ):
        params = NirsParams()
        od = (
            OpticalDensity(1, reference=np.abs(block.data).mean(axis=0))(block.data)
            if block.nirs.signal == "intensity"
            else block.data
        )
        cardiac = StatefulSos(
            bandpass_sos(
                params.cardiac_l_freq, params.cardiac_h_freq, block.sfreq, params.filter_order
            )
        )(od)
        sci = scalp_coupling_index(cardiac, block.nirs)
        names = [n for n, _ in block.nirs.pairs()]
        poor = [n for n, v in zip(names, sci, strict=False) if v < 0.7]
        lines.append(
            f"        wavelengths {block.nirs.wavelengths}, scalp coupling index "
            f"median {np.median(sci):.2f}; below 0.7: {', '.join(poor) or 'none'}"
        )
    return lines


def _recording_lines(rec: Recording, window: float | None, strict: bool) -> list[str]:
    lines = []
    for block in rec.blocks:
        lines.extend(_block_lines(block, rec.source, window, strict))
    if len(rec.markers):
        labels, counts = np.unique(rec.markers.labels, return_counts=True)
        ranked = sorted(zip(labels, counts, strict=True), key=lambda item: -item[1])
        top = ", ".join(f"{lab} x{c}" for lab, c in ranked[:6])
        lines.append(f"  markers: {len(rec.markers)} ({top})")
    empty = rec.meta.get("empty_streams")
    if empty:
        lines.append(f"  empty streams skipped: {', '.join(map(str, empty))}")
    return lines


def inspect_file(
    path: Path, window: float | None, strict: bool, nirs_unit: str | None = None
) -> list[str]:
    """Summary lines for one recording file or NIRx folder."""
    rec = read_recording(path, nirs_unit=nirs_unit)
    return [f"{path}", *_recording_lines(rec, window, strict)]


def inspect_bids(root: Path, window: float | None, strict: bool) -> list[str]:
    """Summary lines for every session of a BIDS dataset."""
    ds = BidsDataset(root)
    groups = [ds.group(s) for s in ds.subjects]
    lines = [
        f"{root}: {len(ds.subjects)} subjects ({groups.count('MA')} MA, {groups.count('HC')} HC)"
    ]
    for subject in ds.subjects:
        for info in ds.sessions(subject):
            lines.append(
                f"sub-{subject} ses-{info.session} group {info.group} rtms {info.rtms} "
                f"craving {info.craving}"
            )
            lines.extend(_recording_lines(ds.read(subject, info.session), window, strict))
    return lines
