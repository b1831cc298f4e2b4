"""A physiologically plausible generator of simultaneous EEG, fNIRS and markers.

A latent severity per subject drives both modalities (resting theta up, alpha down, beta up;
drug-cue frontal gamma up; drug-cue prefrontal HbO up and HbR down); craving follows severity
and an rTMS course shrinks severity by a per-subject response factor. Nuisance signals are
those of real recordings. The generator is streaming: it produces one second at a time with
carried filter state, so the BIDS writer and the live LSL outlets give identical signals.
"""

from models.simulation.config import COMPRESSED_PROTOCOL, COMPRESSED_SESSION_S, SimulationConfig
from models.simulation.session import SessionSimulator
from models.simulation.subject import SubjectParams, draw_cohort

__all__ = [
    "COMPRESSED_PROTOCOL",
    "COMPRESSED_SESSION_S",
    "SessionSimulator",
    "SimulationConfig",
    "SubjectParams",
    "draw_cohort",
]
