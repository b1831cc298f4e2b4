"""The hand-crafted reference the NeuroCLIP paper compares against.

Per window: log band power (theta 4-8, alpha 8-13, beta 13-30, gamma 30-45 Hz) of every EEG
channel, absolute and relative to the channel's 1-45 Hz power (relative power is robust to the
amplitude gains that differ between people, as the deep encoder's RMS normalisation is), and
cue-locked fNIRS features: the window mean of HbO and HbR per channel, split
into drug-cue windows and the rest (the markers say which). Standardised, then an
L2-regularised logistic regression with a fixed C (no tuning, so nothing is tuned on test
folds).
"""

from __future__ import annotations

import numpy as np
from scipy import signal

BANDS = ((4.0, 8.0), (8.0, 13.0), (13.0, 30.0), (30.0, 45.0))
C = 0.1


def features(
    eeg: np.ndarray, nirs: np.ndarray, in_drug_cue: np.ndarray, eeg_sfreq: float
) -> np.ndarray:
    """``(N, 8 * n_eeg + 2 * n_nirs)`` features of windows ``eeg``, ``nirs`` ``(N, C, S)``."""
    f, psd = signal.welch(eeg, fs=eeg_sfreq, nperseg=min(250, eeg.shape[2]), axis=2)
    powers = [np.log(psd[:, :, (f >= lo) & (f < hi)].mean(axis=2) + 1e-12) for lo, hi in BANDS]
    total = np.log(psd[:, :, (f >= BANDS[0][0]) & (f < BANDS[-1][1])].mean(axis=2) + 1e-12)
    relative = [p - total for p in powers]
    mean_hb = nirs.mean(axis=2)
    drug = in_drug_cue.astype(float)[:, None]
    return np.concatenate([*powers, *relative, mean_hb * drug, mean_hb * (1 - drug)], axis=1)


class HandcraftedModel:
    """Standardise + logistic regression on :func:`features`."""

    def __init__(self, eeg_sfreq: float, seed: int = 0):
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        self.eeg_sfreq = eeg_sfreq
        self.pipeline = make_pipeline(
            StandardScaler(),
            LogisticRegression(C=C, max_iter=5000, class_weight="balanced", random_state=seed),
        )

    def fit(
        self, eeg: np.ndarray, nirs: np.ndarray, drug: np.ndarray, y: np.ndarray
    ) -> HandcraftedModel:
        """Fit on training windows."""
        self.pipeline.fit(features(eeg, nirs, drug, self.eeg_sfreq), y)
        return self

    def predict_proba(self, eeg: np.ndarray, nirs: np.ndarray, drug: np.ndarray) -> np.ndarray:
        """Probability of MA per window."""
        return self.pipeline.predict_proba(features(eeg, nirs, drug, self.eeg_sfreq))[:, 1]
