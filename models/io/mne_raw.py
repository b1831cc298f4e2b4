"""Turn an ``mne.io.Raw`` into a :class:`~models.signals.Recording` in canonical units."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from contract.errors import ChannelError
from models.signals import Markers, NirsLayout, Recording, SignalBlock
from models.units import nirs_signal

_NIRS_TYPES = {"fnirs_cw_amplitude": "intensity", "fnirs_od": "od", "hbo": "hb", "hbr": "hb"}


def recording_from_raw(
    raw,
    source: Path,
    meta: dict[str, object] | None = None,
    hb_unit: str = "M",
    hb_to_um: float | None = 1e6,
) -> Recording:
    """Split ``raw`` into an EEG block (uV) and an fNIRS block (a.u., OD or uM) with markers.

    ``hb_unit`` is the unit the file gave for haemoglobin data and ``hb_to_um`` the factor
    from MNE's numbers to uM (MNE holds molar: 1e6). MNE reads a SNIRF file that declares no
    unit as molar without saying so; the SNIRF reader then passes ``hb_to_um=None`` and the
    data is refused rather than scaled by a guess.
    """
    import mne

    raw.load_data(verbose="error")
    types = raw.get_channel_types()
    times = raw.times + raw.first_time
    blocks = []
    eeg_picks = [i for i, t in enumerate(types) if t == "eeg"]
    if eeg_picks:
        blocks.append(
            SignalBlock(
                name=f"{source.name} EEG",
                kind="eeg",
                ch_names=tuple(raw.ch_names[i] for i in eeg_picks),
                units=("uV",) * len(eeg_picks),
                sfreq=float(raw.info["sfreq"]),
                data=raw.get_data(picks=eeg_picks).T * 1e6,
                times=times,
            )
        )
    nirs_picks = [i for i, t in enumerate(types) if t in _NIRS_TYPES]
    if nirs_picks:
        kinds = {_NIRS_TYPES[types[i]] for i in nirs_picks}
        signal = kinds.pop()
        names = [raw.ch_names[i] for i in nirs_picks]
        if signal != "hb":
            wavelengths = [raw.info["chs"][i]["loc"][9] for i in nirs_picks]
            if not all(np.isfinite(w) and w > 0 for w in wavelengths):
                raise ChannelError(
                    f"{source}: fNIRS channels carry no wavelengths (e.g. {names[0]!r}).",
                    fix="export the file with its wavelength metadata (SNIRF "
                    "probe/wavelengths), or name channels 'S<i>_D<j> <nm>'.",
                    path=source,
                )
            names = [f"{n.split(' ')[0]} {w:g}" for n, w in zip(names, wavelengths, strict=False)]
        distances = mne.preprocessing.nirs.source_detector_distances(raw.info, picks=nirs_picks)
        scale = 1.0
        if signal == "hb":
            try:
                nirs_signal(str(source), names[0], hb_unit, "hbo", haemoglobin_label=True)
            except ChannelError as exc:
                raise ChannelError(
                    exc.message,
                    fix="give the unit the device exported: --nirs-unit uM (inspect, score, "
                    "replay, convert), or write it into the file (SNIRF "
                    "nirs/data1/measurementList<k>/dataUnit, e.g. 'umol/L').",
                    path=source,
                ) from None
            scale = float(hb_to_um)
        found = {"intensity": "a.u.", "od": "OD", "hb": hb_unit}[signal]
        blocks.append(
            SignalBlock(
                name=f"{source.name} NIRS",
                kind="nirs",
                ch_names=tuple(names),
                units=({"intensity": "a.u.", "od": "OD", "hb": "uM"}[signal],) * len(names),
                sfreq=float(raw.info["sfreq"]),
                data=raw.get_data(picks=nirs_picks).T * scale,
                times=times,
                nirs=NirsLayout.from_labels(
                    names,
                    distances_m=distances,
                    signal=signal,
                    found_unit=found,
                    midpoints_m=np.array([raw.info["chs"][i]["loc"][:3] for i in nirs_picks]),
                ),
            )
        )
    ann = raw.annotations
    # with orig_time set, onsets count from the measurement start like ``times`` do;
    # without it they count from the first sample
    offset = 0.0 if ann.orig_time is not None else raw.first_time
    markers = Markers(
        times=np.asarray(ann.onset, float) + offset,
        labels=tuple(str(d) for d in ann.description),
        durations=np.asarray(ann.duration, float),
    )
    info = {
        "ignored_channel_types": sorted({t for t in types if t != "eeg" and t not in _NIRS_TYPES})
    }
    info.update(meta or {})
    return Recording(source=source, blocks=tuple(blocks), markers=markers, meta=info)
