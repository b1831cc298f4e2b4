"""Linear combinations of channels whose result does not depend on how many rows are fed."""

from __future__ import annotations

import numpy as np


class RowWeightedSum:
    """``x @ matrix.T`` for a sparse ``matrix``, computed sample by sample the same way
    whatever the number of rows.

    BLAS matrix products change their summation order with the number of rows (14692 of
    24000 results differed in the last bit between one call and single rows here), which
    made live chunks differ from offline windows after float32 rounding. Each output is
    the sum of its few non-zero terms, added in a fixed order.
    """

    def __init__(self, matrix: np.ndarray):
        rows, cols = np.nonzero(matrix)
        width = max(np.bincount(rows, minlength=matrix.shape[0]).max(initial=0), 0)
        self.shape = matrix.shape
        self.sources = np.zeros((width, matrix.shape[0]), int)
        self.weights = np.zeros((width, matrix.shape[0]))
        slot = np.zeros(matrix.shape[0], int)
        for r, c in zip(rows, cols, strict=True):
            self.sources[slot[r], r] = c
            self.weights[slot[r], r] = matrix[r, c]
            slot[r] += 1

    def __call__(self, x: np.ndarray) -> np.ndarray:
        out = np.zeros((x.shape[0], self.shape[0]))
        for sources, weights in zip(self.sources, self.weights, strict=True):
            out += x[:, sources] * weights
        return out
