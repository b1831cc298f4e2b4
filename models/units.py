"""Units and data kinds of EEG and fNIRS channels, as files and LSL streams name them.

Every reader (LSL desc, XDF, SNIRF and NIRx through MNE) asks this module what a channel
holds and by what factor its values reach the signal contract's units (EEG uV, fNIRS raw
intensity a.u., optical density, haemoglobin uM). A unit that is missing or not in these
tables is refused, naming the channel, the unit found and the units accepted: a wrong guess
here silently scales or misreads everything downstream (the same haemoglobin data labelled
in M and in uM scored 0.80-0.98 and 0.17 before this check existed).
"""

from __future__ import annotations

from contract.errors import ChannelError
from models.signals import NirsSignal

EEG_TO_UV: dict[str, float] = {
    "uV": 1.0,
    "µV": 1.0,
    "μV": 1.0,
    "microvolt": 1.0,
    "microvolts": 1.0,
    "nV": 1e-3,
    "nanovolts": 1e-3,
    "mV": 1e3,
    "millivolt": 1e3,
    "millivolts": 1e3,
    "V": 1e6,
    "volt": 1e6,
    "volts": 1e6,
}
"""Factor from an EEG unit to uV. Abbreviations are matched exactly (``mV`` is not ``MV``),
words in any case."""

HB_TO_UM: dict[str, float] = {
    "M": 1e6,
    "mM": 1e3,
    "uM": 1.0,
    "µM": 1.0,
    "μM": 1.0,
    "nM": 1e-3,
    "mol/l": 1e6,
    "mol/L": 1e6,
    "mmol/l": 1e3,
    "mmol/L": 1e3,
    "umol/l": 1.0,
    "umol/L": 1.0,
    "µmol/l": 1.0,
    "µmol/L": 1.0,
    "μmol/L": 1.0,
    "molar": 1e6,
    "millimolar": 1e3,
    "micromolar": 1.0,
    "nanomolar": 1e-3,
}
"""Factor from a haemoglobin concentration unit to uM (MNE holds molar, SNIRF names CMIXF
units such as ``umol/L``, LSL devices write ``uM`` or ``micromolar``)."""

INTENSITY_UNITS = frozenset(
    {
        "a.u.",
        "au",
        "a.u",
        "arbitrary",
        "arbitrary units",
        "v",
        "volt",
        "volts",
        "mv",
        "uv",
        "µv",
        "counts",
        "intensity",
        "raw",
    }
)
"""Units a raw continuous-wave intensity is given in (lower case). Their scale does not
matter: optical density is a ratio to the channel's own reference."""

OD_UNITS = frozenset({"od", "optical density", "dod", "delta od", "1", "unitless"})
"""Units of optical density (lower case)."""

NIRS_TYPES: dict[str, NirsSignal] = {
    "nirs_cw_amplitude": "intensity",
    "fnirs_cw_amplitude": "intensity",
    "intensity": "intensity",
    "raw": "intensity",
    "fnirs_od": "od",
    "od": "od",
    "optical density": "od",
    "dod": "od",
    "hbo": "hb",
    "hbr": "hb",
    "oxyhemoglobin": "hb",
    "deoxyhemoglobin": "hb",
}
"""Channel ``type`` values (lower case) that say what an fNIRS channel holds."""

KIND_NAMES = {"intensity": "raw intensity", "od": "optical density", "hb": "haemoglobin"}
"""How messages and ``inspect`` name the fNIRS data kinds."""

ACCEPTED_NIRS = (
    "raw intensity: a.u., V, mV, counts; optical density: OD, dOD; "
    "haemoglobin: M, mM, uM, nM, mol/L, mmol/L, umol/L, molar, micromolar"
)
ACCEPTED_EEG = "uV (µV, microvolts), nV, mV, V"


def _lookup(table: dict[str, float], unit: str) -> float | None:
    if unit in table:
        return table[unit]
    lowered = {k.lower(): v for k, v in table.items() if len(k) > 2 and "/" not in k}
    return lowered.get(unit.lower())


def eeg_scale(unit: str) -> float | None:
    """Factor from ``unit`` to uV, ``None`` when the unit is missing or unknown.

    Case is ignored (``uv``, ``UV``, ``µv``): no EEG amplifier records megavolts, so
    ``MV`` can only mean ``mV``."""
    unit = unit.strip()
    if not unit:
        return None
    found = _lookup(EEG_TO_UV, unit)
    if found is None:
        found = {k.lower(): v for k, v in EEG_TO_UV.items()}.get(unit.lower())
    return found


def eeg_unit_refusal(source: str, channel: str, unit: str) -> str:
    """The message refusing an EEG channel whose unit is missing or unknown."""
    found = f"unit {unit!r}" if unit.strip() else "no unit"
    return (
        f"{source}: EEG channel {channel!r} has {found}; accepted: {ACCEPTED_EEG}. "
        "Without a known unit every amplitude check and the model's input scale would be "
        "a guess."
    )


EEG_UNIT_FIX = (
    "set the channel units in the acquisition software or the stream's "
    "desc/channels/channel/unit (LSL) before streaming or recording."
)


def nirs_signal(
    source: str, channel: str, unit: str, ch_type: str, haemoglobin_label: bool
) -> tuple[NirsSignal, float]:
    """What an fNIRS channel holds and the factor to the signal contract's unit.

    ``haemoglobin_label`` says whether the label names a chromophore (``S1_D1 hbo``) rather
    than a wavelength. Returns ``(signal, scale)``: ``intensity`` (scale 1), ``od`` (scale
    1) or ``hb`` (scale to uM).

    Raises
    ------
    ChannelError
        Naming ``source``, the channel, the unit found and the units accepted, when the unit
        is missing, unknown, or contradicts the label or the channel type.
    """
    unit, kind_from_type = unit.strip(), NIRS_TYPES.get(ch_type.strip().lower())
    found = f"unit {unit!r}" if unit else "no unit"
    if haemoglobin_label or kind_from_type == "hb":
        scale = _lookup(HB_TO_UM, unit) if unit else None
        if scale is None or not haemoglobin_label:
            raise ChannelError(
                f"{source}: fNIRS channel {channel!r} holds haemoglobin but has {found}"
                + ("" if haemoglobin_label else " and a wavelength label")
                + f"; accepted: {ACCEPTED_NIRS}.",
                fix="give the concentration unit (e.g. uM, or SNIRF measurementList dataUnit "
                "'umol/L'); label haemoglobin channels 'S<i>_D<j> hbo|hbr'.",
            )
        return "hb", scale
    lowered = unit.lower()
    if kind_from_type == "intensity" and lowered in OD_UNITS:
        raise ChannelError(
            f"{source}: fNIRS channel {channel!r} is typed raw intensity ({ch_type!r}) but "
            f"has the optical-density {found}.",
            fix="make the channel type and unit agree: nirs_cw_amplitude with a.u., or "
            "fnirs_od with OD.",
        )
    if kind_from_type == "od" or lowered in OD_UNITS:
        if unit and lowered not in OD_UNITS and lowered not in ("a.u.", "au", "arbitrary"):
            raise ChannelError(
                f"{source}: fNIRS channel {channel!r} is typed optical density but has {found}; "
                f"accepted: {ACCEPTED_NIRS}.",
                fix="set the unit to OD (or a.u.) for optical density channels.",
            )
        return "od", 1.0
    if lowered in INTENSITY_UNITS and kind_from_type in (None, "intensity"):
        return "intensity", 1.0
    if _lookup(HB_TO_UM, unit) is not None:
        raise ChannelError(
            f"{source}: fNIRS channel {channel!r} has a wavelength label but the "
            f"concentration {found}.",
            fix="label haemoglobin channels 'S<i>_D<j> hbo|hbr', or give raw intensity "
            "(a.u.) or optical density (OD) per wavelength.",
        )
    raise ChannelError(
        f"{source}: fNIRS channel {channel!r} has {found}; accepted: {ACCEPTED_NIRS}.",
        fix="set desc/channels/channel/unit (LSL) or the file's data unit; the monitor "
        "never guesses whether values are intensity, optical density or concentration.",
    )
