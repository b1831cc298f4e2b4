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


@pytest.fixture
def broker(tmp_path):
    """A real Mosquitto on a free loopback port, stopped after the test."""
    from tests.live_parts import Broker

    b = Broker(tmp_path)
    b.start()
    yield b
    b.stop()


@pytest.fixture(scope="session")
def lsl_env() -> dict[str, str]:
    """Environment for subprocesses and inlets: LSL discovery on this machine only."""
    os.environ["LSLAPICFG"] = str(LSL_LOOPBACK)
    return {**os.environ, "LSLAPICFG": str(LSL_LOOPBACK)}


def _simulated_cohort(tmp_path_factory: pytest.TempPathFactory, name: str, **cohort) -> Path:
    from models.settings import load_config
    from models.simulation.bids_writer import write_cohort
    from models.simulation.config import SimulationConfig

    overrides = {f"cohort.{k}": v for k, v in cohort.items()}
    cfg = load_config(SimulationConfig, None, name="simulate", environ={}, overrides=overrides)
    return write_cohort(tmp_path_factory.mktemp(name) / "bids", cfg)


@pytest.fixture(scope="session")
def tiny_cohort(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One MA (pre and post) and one HC subject, three minutes each, with an rTMS block."""
    return _simulated_cohort(
        tmp_path_factory, "cohort", ma=1, hc=1, minutes=3.0, seed=11, rtms_in_sessions=True
    )


@pytest.fixture(scope="session")
def train_cohort(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three MA and three HC subjects, two minutes each, with an rTMS block in every session."""
    return _simulated_cohort(
        tmp_path_factory, "train", ma=3, hc=3, minutes=2.0, seed=5, rtms_in_sessions=True
    )


QUICK_TRAIN = REPO / "tests" / "data" / "train_quick.yaml"


@pytest.fixture(scope="session")
def quick_config():
    """A training configuration of a few epochs (a model that exists, not a good one)."""
    from models.settings import load_config
    from models.train_config import TrainConfig

    return load_config(TrainConfig, QUICK_TRAIN, name="train", environ={})


@pytest.fixture(scope="session")
def train_windows(train_cohort, quick_config):
    """The windows of ``train_cohort``."""
    from models.dataset import load_windows

    return load_windows(train_cohort, quick_config.signal, hop_s=quick_config.train_hop_s)


@pytest.fixture(scope="session")
def quick_bundle(train_windows, quick_config, tmp_path_factory):
    """A bundle trained with the quick configuration, and the trained model."""
    from models.export import write_bundle
    from models.training import train_model

    trained = train_model(train_windows, quick_config, progress=False)
    out = tmp_path_factory.mktemp("bundle") / "b"
    write_bundle(trained, quick_config, out, ws=train_windows, name="quick", metrics={})
    return out, trained
