"""Subject-wise folds: no subject ever sits on both sides of a split (numpy only, no torch)."""

from __future__ import annotations

import numpy as np

from contract.errors import DatasetError


def subject_folds(
    subject: np.ndarray, group: np.ndarray, k: int, seed: int, what: str = "--cv"
) -> list[list[str]]:
    """Stratified subject-wise folds: each group's subjects dealt round-robin after a shuffle.

    Raises
    ------
    DatasetError
        When a group has fewer subjects than folds (every fold needs one of each group).
    """
    rng = np.random.default_rng(seed)
    folds: list[list[str]] = [[] for _ in range(k)]
    for label in (1, 0):
        subjects = sorted({s for s, g in zip(subject, group, strict=True) if g == label})
        if len(subjects) < k:
            raise DatasetError(
                f"{len(subjects)} {'MA' if label else 'HC'} subject(s) for {k} folds: every "
                "fold needs at least one subject of each group.",
                fix=f"use {what} {max(2, len(subjects))} or fewer, or add subjects.",
            )
        rng.shuffle(subjects)
        for i, name in enumerate(subjects):
            folds[i % k].append(name)
    return folds
