"""A second synthetic cohort generator, written from the literature independently of
:mod:`models.simulation`, so that models are developed on cohorts of two generators and
cannot overfit one simulator. It shares no signal code with the first one.

Forms used (each module's docstring says where):

- EEG spectra: aperiodic ``1/f**chi`` plus Gaussian peaks (He, 2014; Donoghue et al.,
  2020, Nat Neurosci 23:1655), drawn by spectral shaping of Gaussian noise (Timmer &
  König, 1995, A&A 300:707); individual alpha frequency (Klimesch, 1999).
- Volume conduction: current dipoles in a homogeneous conductor, ``p . (r - r0) /
  |r - r0|**3`` (Nunez & Srinivasan, 2006, Electric Fields of the Brain).
- Disorder in EEG: resting theta and beta power up, alpha down (quantitative EEG of
  methamphetamine dependence, e.g. Newton et al., 2003, Clin Neurophysiol 114:410); frontal
  gamma up during drug cues (cue reactivity).
- EEG artefacts: ocular propagation falling with distance from the eyes (Croft & Barry,
  2000), EMG spectrum and topography (Goncharova et al., 2003), ECG, mains, drift.
- Haemodynamics: canonical double-gamma HRF (Friston et al., 1998; Glover, 1999) convolved
  with the cue train; HbR opposite, smaller and later; inter-subject latency variation
  (Handwerker et al., 2004).
- Optics: modified Beer-Lambert law (Delpy et al., 1988), DPF by wavelength and age
  (Scholkmann & Wolf, 2013, J Biomed Opt 18:105004), Prahl's extinction table.
- Systemic fNIRS physiology: cardiac, respiration, Mayer waves, very low frequencies
  (Scholkmann et al., 2014, NeuroImage 85:6; Julien, 2006); poor optode coupling as seen by
  the scalp coupling index (Pollonini et al., 2014).
- Design: event-related cues with jittered gaps (Dale, 1999) or blocks.

Public API: :func:`write_literature_cohort` and :class:`LiteratureCohortConfig`.
"""

from models.literature_sim.config import LiteratureCohortConfig
from models.literature_sim.writer import write_literature_cohort

__all__ = ["LiteratureCohortConfig", "write_literature_cohort"]
