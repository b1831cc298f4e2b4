"""Causal, stateful preprocessing shared by training and the live path (numpy/scipy only).

Every object here is fed chunks of ``(n_samples, n_channels)`` in order and keeps its state
between calls, so feeding a recording in any chunking gives the same output as one call.
"""

from models.preprocessing.eeg import EegChain, EegParams, TmsBlanker
from models.preprocessing.filters import StatefulSos, bandpass_sos, notch_sos
from models.preprocessing.nirs import BeerLambert, NirsChain, NirsParams, OpticalDensity
from models.preprocessing.resample import PolyphaseResampler

__all__ = [
    "BeerLambert",
    "EegChain",
    "EegParams",
    "NirsChain",
    "NirsParams",
    "OpticalDensity",
    "PolyphaseResampler",
    "StatefulSos",
    "TmsBlanker",
    "bandpass_sos",
    "notch_sos",
]
