"""Shared fixtures (real recordings, a loopback-only LSL configuration, simulated cohorts)
and the test tiers.

Tiers are markers, set here from what a test uses so nobody has to remember them:
``integration`` (real processes or sockets: LSL outlets, Mosquitto, subprocesses),
``browser`` (a real Chromium), ``fault`` (the fault suite, ``tests/faults``) and ``slow``
(trains a model or simulates a cohort). Everything else is the unit tier, which
``bash scripts/test.sh --fast`` runs. :func:`missing_tool` skips a test whose tool is absent
on a developer's machine and fails it under ``CI=true``, where the test command installs it.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
RECORDINGS = REPO.parent / "shared" / "data" / "recordings"
LSL_LOOPBACK = REPO / "configs" / "lsl" / "loopback.cfg"


_INTEGRATION_FIXTURES = {"lsl_env", "broker"}
_SLOW_FIXTURES = {"tiny_cohort", "train_cohort", "train_windows", "quick_bundle"}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every test with its tier (see the module docstring)."""
    for item in items:
        path = Path(str(item.fspath))
        fixtures = set(getattr(item, "fixturenames", ()))
        if "faults" in path.parts:
            item.add_marker(pytest.mark.fault)
        if path.name == "test_browser.py":
            item.add_marker(pytest.mark.browser)
        if fixtures & _INTEGRATION_FIXTURES or "subprocess" in _imports(path):
            item.add_marker(pytest.mark.integration)
        if fixtures & _SLOW_FIXTURES:
            item.add_marker(pytest.mark.slow)


_IMPORTS: dict[Path, str] = {}


def _imports(path: Path) -> str:
    """The import lines of a test module (a test that starts processes imports subprocess)."""
    if path not in _IMPORTS:
        text = path.read_text() if path.suffix == ".py" else ""
        _IMPORTS[path] = " ".join(
            line for line in text.splitlines() if line.startswith(("import ", "from "))
        )
    return _IMPORTS[path]


def missing_tool(what: str, fix: str) -> None:
    """``what`` (a tool, the shared recordings) is not on this machine: skip here, fail under
    CI (which must have it)."""
    message = f"{what} is not on this machine; {fix}"
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="session")
def recordings() -> Path:
    """The shared real recordings (``../shared/data/recordings``)."""
    if not RECORDINGS.is_dir():
        missing_tool(
            f"the real recordings ({RECORDINGS})",
            "check out the repository beside shared/, which holds them (../shared/data/recordings)",
        )
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
    from contract.settings import load_config
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
    from contract.settings import load_config
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
