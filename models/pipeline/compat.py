"""Whether a stream fits a model bundle: one check for the monitor, replay and offline scoring.

A stream is refused, with a message that names the bundle field, when the model's channels
cannot be found in it (EEG by name, case or alias; fNIRS pairs by name or optode position:
:mod:`models.montage`), when the model's EEG channels carry no known unit, or when its rate
cannot be resampled to the model's.
"""

from __future__ import annotations

from contract.errors import BundleError, ChannelError
from models.bundle import Bundle
from models.io.stream_desc import StreamLayout
from models.montage import NirsFit, fit_nirs, pick_eeg
from models.pipeline.streams import StreamDescription
from models.signals import NirsLayout
from models.units import EEG_UNIT_FIX, eeg_unit_refusal


def check_stream(bundle: Bundle, role: str, description: StreamDescription) -> list[str] | None:
    """Refuse an EEG or NIRS stream that does not fit ``bundle``.

    Returns the stream's names of the model's fNIRS pairs (in model order; found by name or
    by optode position, :func:`models.montage.fit_nirs`) for a NIRS stream, None for EEG.

    Raises
    ------
    BundleError
        Naming the field (``inputs.eeg.channels``, ``inputs.nirs.sfreq``...) that differs.
    """
    source = f"the {role.upper()} stream {description.name!r}"
    layout = description.layout
    if role == "eeg":
        bundle.check_modality("eeg", layout.labels, description.nominal_rate, source)
        _check_eeg_units(bundle, layout, source)
        return None
    fit = fit_nirs_for(bundle, layout.nirs, source)
    bundle.check_modality(
        "nirs", tuple(bundle.meta["inputs"]["nirs"]["channels"]), description.nominal_rate, source
    )
    return fit.pair_names


def fit_nirs_for(bundle: Bundle, layout: NirsLayout, source: str) -> NirsFit:
    """The bundle's fNIRS pairs found in a stream's layout (:func:`models.montage.fit_nirs`),
    refused as a :class:`BundleError` naming the field."""
    try:
        return fit_nirs(bundle.nirs_pairs, bundle.nirs_midpoints, layout, source)
    except ChannelError as exc:
        raise BundleError(
            f"Bundle {bundle.path.name}: field inputs.nirs.channels: {exc.message}",
            field="inputs.nirs.channels",
            fix=exc.fix,
            path=bundle.path,
        ) from None


def _check_eeg_units(bundle: Bundle, layout: StreamLayout, source: str) -> None:
    """Refuse the model's EEG channels when the stream gave no known unit for them."""
    picks = pick_eeg(bundle.eeg_channels, layout.labels, source)
    found = layout.found_units or ("",) * len(layout.labels)
    for i in picks:
        if layout.units[i] != "uV":
            raise ChannelError(
                eeg_unit_refusal(source, layout.labels[i], found[i]), fix=EEG_UNIT_FIX
            )
