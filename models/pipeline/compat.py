"""Whether a stream fits a model bundle: one check for the monitor, replay and offline scoring.

A stream is refused, with a message that names the bundle field, when its channels, rate or
fNIRS pair order differ from what the model was trained on.
"""

from __future__ import annotations

from contract.errors import BundleError, ChannelError
from models.bundle import Bundle
from models.io.stream_desc import StreamLayout
from models.montage import pick_eeg
from models.pipeline.streams import StreamDescription
from models.units import EEG_UNIT_FIX, eeg_unit_refusal
from models.windows import nirs_out_names


def check_stream(bundle: Bundle, role: str, description: StreamDescription) -> list[str] | None:
    """Refuse an EEG or NIRS stream that does not fit ``bundle``.

    Returns the fNIRS pair names (source-detector, in model order) for a NIRS stream, None
    for EEG.

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
    offered = nirs_out_names(layout.nirs)
    bundle.check_modality("nirs", tuple(offered), description.nominal_rate, source)
    expected = list(bundle.meta["inputs"]["nirs"]["channels"])
    if offered != expected:
        raise BundleError(
            f"Bundle {bundle.path.name}: field inputs.nirs.channels expects the fNIRS pairs in "
            f"the order {', '.join(expected[:4])}..., {source} gives {', '.join(offered[:4])}...",
            field="inputs.nirs.channels",
            fix="use the montage the model was trained on, or train a model for this one.",
            path=bundle.path,
        )
    return [name for name, _ in layout.nirs.pairs()]


def _check_eeg_units(bundle: Bundle, layout: StreamLayout, source: str) -> None:
    """Refuse the model's EEG channels when the stream gave no known unit for them."""
    picks = pick_eeg(bundle.eeg_channels, layout.labels, source)
    found = layout.found_units or ("",) * len(layout.labels)
    for i in picks:
        if layout.units[i] != "uV":
            raise ChannelError(
                eeg_unit_refusal(source, layout.labels[i], found[i]), fix=EEG_UNIT_FIX
            )
