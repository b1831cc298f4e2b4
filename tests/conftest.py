"""Shared fixtures: the real recordings, a loopback-only LSL configuration, a tiny cohort."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
RECORDINGS = REPO.parent / "shared" / "data" / "recordings"
LSL_LOOPBACK = REPO / "configs" / "lsl" / "loopback.cfg"


@pytest.fixture(scope="session")
def recordings() -> Path:
    """The shared real recordings (``../shared/data/recordings``)."""
    if not RECORDINGS.is_dir():
        pytest.skip(f"real recordings not found at {RECORDINGS} (shared/ is not beside the repo)")
    return RECORDINGS


@pytest.fixture(scope="session")
def lsl_env() -> dict[str, str]:
    """Environment for subprocesses and inlets: LSL discovery on this machine only."""
    os.environ["LSLAPICFG"] = str(LSL_LOOPBACK)
    return {**os.environ, "LSLAPICFG": str(LSL_LOOPBACK)}


@pytest.fixture(scope="session")
def tiny_cohort(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One MA (pre and post) and one HC subject, three minutes each, with an rTMS block."""
    from models.settings import load_config
    from models.simulation.bids_writer import write_cohort
    from models.simulation.config import SimulationConfig

    cfg = load_config(
        SimulationConfig,
        None,
        name="simulate",
        environ={},
        overrides={
            "cohort.ma": 1,
            "cohort.hc": 1,
            "cohort.minutes": 3.0,
            "cohort.seed": 11,
            "cohort.rtms_in_sessions": True,
        },
    )
    return write_cohort(tmp_path_factory.mktemp("cohort") / "bids", cfg)
