"""``neuroclip inspect``: what a recording or dataset holds, in a few lines of text."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from models.io import BidsDataset, read_recording, require_duration, require_finite
from models.preprocessing.nirs import NirsChain, NirsParams
from models.preprocessing.quality import cardiac_peak_power, scalp_coupling_index
from models.signals import SHORT_SEPARATION_M, Recording, SignalBlock
from models.units import KIND_NAMES
from models.windows import WindowParams


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
    if block.kind == "nirs" and block.nirs is not None:
        lines.extend(_nirs_lines(block))
    return lines


def _nirs_lines(block: SignalBlock) -> list[str]:
    """What an fNIRS block holds: kind and unit, short channels, saturated or lost pairs,
    and the coupling index the quality gate uses (the same thresholds)."""
    layout, params, windows = block.nirs, NirsParams(), WindowParams()
    found = layout.found_unit or "no unit"
    lines = [
        f"        data: {KIND_NAMES[layout.signal]} (unit found: {found}; read as "
        f"{block.units[0] if block.units else '?'})"
        + (f", wavelengths {layout.wavelengths}" if layout.wavelengths else "")
    ]
    names = [n for n, _ in layout.pairs()]
    short = [n for n, s in zip(names, layout.short_mask(), strict=True) if s]
    lines.append(
        f"        short-separation pairs (< {SHORT_SEPARATION_M * 1000:g} mm, not scored): "
        f"{', '.join(short) if short else 'none'}"
    )
    if block.sfreq <= 2 * params.cardiac_l_freq:
        return lines
    chain = NirsChain(params, block.sfreq, layout)
    out = chain(block.data)
    lost = [
        n for n, x in zip(names, layout.any_per_pair(out.lost_in).any(axis=0), strict=True) if x
    ]
    lines.append(f"        saturated or lost: {', '.join(lost) if lost else 'none'}")
    long = ~layout.short_mask()
    band = (params.cardiac_l_freq, min(params.cardiac_h_freq, 0.45 * block.sfreq))
    if layout.signal == "hb":
        hbo_columns = layout.pair_columns[:, 0]

        def measure(cardiac: np.ndarray) -> np.ndarray:
            return cardiac_peak_power(cardiac[:, hbo_columns], block.sfreq, band)

        label, threshold = "cardiac peak power", windows.psp_threshold
    else:

        def measure(cardiac: np.ndarray) -> np.ndarray:
            return scalp_coupling_index(cardiac, layout)

        label, threshold = "scalp coupling index", windows.sci_threshold
    per_window = [measure(span) for span in _gate_windows(out.cardiac, block.sfreq, windows)]
    index = np.median(per_window, axis=0)
    scope = f"median of {len(per_window)} {windows.window_s:g} s windows"
    if len(per_window) == 1:
        scope = "whole recording, shorter than two windows"
    label = f"{label} ({scope})"
    if not long.any():
        lines.append("        no long pair: nothing the model could score")
        return lines
    poor = [n for n, v, k in zip(names, index, long, strict=True) if k and v < threshold]
    lines.append(
        f"        {label}: median {np.median(index[long]):.2f}; "
        f"below {threshold:g}: {', '.join(poor) or 'none'}"
    )
    return lines


def _gate_windows(cardiac: np.ndarray, sfreq: float, params: WindowParams) -> list[np.ndarray]:
    """The cardiac band cut into the gate's window length, end to end, after the filters'
    first seconds (the whole recording when it is shorter than two windows)."""
    size, skip = round(params.window_s * sfreq), round(5.0 * sfreq)
    starts = range(skip, len(cardiac) - size + 1, size)
    if len(starts) < 2:
        return [cardiac]
    return [cardiac[s : s + size] for s in starts]


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
