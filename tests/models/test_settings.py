"""Configuration: defaults, YAML, environment overrides, and errors that name the fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from contract.errors import ConfigError
from contract.settings import load_config
from models.simulation.config import SimulationConfig

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def test_committed_yaml_restates_the_embedded_defaults():
    from_file = load_config(
        SimulationConfig, CONFIGS / "simulate.yaml", name="simulate", environ={}
    )
    assert from_file == SimulationConfig()


def test_environment_overrides_file_and_cli_overrides_environment(tmp_path):
    path = tmp_path / "sim.yaml"
    path.write_text("cohort:\n  ma: 3\n")
    env = {"NEUROCLIP_SIMULATE__COHORT__MA": "5", "NEUROCLIP_SIMULATE__COHORT__HC": "2"}
    cfg = load_config(SimulationConfig, path, name="simulate", environ=env)
    assert (cfg.cohort.ma, cfg.cohort.hc) == (5, 2)
    cfg = load_config(
        SimulationConfig, path, name="simulate", environ=env, overrides={"cohort.ma": 9}
    )
    assert cfg.cohort.ma == 9


def test_objects_are_frozen():
    cfg = SimulationConfig()
    with pytest.raises(AttributeError):
        cfg.cohort.ma = 3  # type: ignore[misc]


def test_wrong_value_names_key_expected_found_and_file(tmp_path):
    path = tmp_path / "sim.yaml"
    path.write_text("cohort:\n  ma: -3\n")
    with pytest.raises(ConfigError) as info:
        load_config(SimulationConfig, path, name="simulate", environ={})
    text = str(info.value)
    assert "cohort.ma" in text and ">= 0" in text and "-3" in text and str(path) in text
    assert "NEUROCLIP_SIMULATE__COHORT__MA" in text
    assert info.value.key == "cohort.ma"


def test_literal_lists_allowed_values(tmp_path):
    path = tmp_path / "sim.yaml"
    path.write_text("live:\n  group: XX\n")
    with pytest.raises(ConfigError, match=r"live.group.*one of 'MA', 'HC'.*'XX'"):
        load_config(SimulationConfig, path, name="simulate", environ={})


def test_environment_value_is_blamed_on_the_variable():
    env = {"NEUROCLIP_SIMULATE__COHORT__MINUTES": "soon"}
    with pytest.raises(
        ConfigError, match="environment variable NEUROCLIP_SIMULATE__COHORT__MINUTES"
    ):
        load_config(SimulationConfig, None, name="simulate", environ=env)


def test_unknown_key_lists_the_allowed_ones(tmp_path):
    path = tmp_path / "sim.yaml"
    path.write_text("cohort:\n  mas: 3\n")
    with pytest.raises(ConfigError, match=r"cohort.mas.*allowed keys under cohort are hc, ma"):
        load_config(SimulationConfig, path, name="simulate", environ={})


def test_cross_field_rule_and_broken_yaml(tmp_path):
    path = tmp_path / "sim.yaml"
    path.write_text("cohort:\n  ma: 0\n  hc: 0\n")
    with pytest.raises(ConfigError, match="ma \\+ hc >= 1"):
        load_config(SimulationConfig, path, name="simulate", environ={})
    path.write_text("cohort: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(SimulationConfig, path, name="simulate", environ={})
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(SimulationConfig, tmp_path / "missing.yaml", name="simulate", environ={})
