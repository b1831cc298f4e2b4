"""The ``neuroclip`` console script, run as users run it."""

from __future__ import annotations

import subprocess
import sys

import pytest

from neuroclip.cli import build_parser, main


def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "neuroclip", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )


def _subcommands() -> list[str]:
    parser = build_parser()
    action = next(a for a in parser._actions if a.dest == "command")
    return sorted(action.choices)


def test_help_on_every_subcommand():
    assert _run("--help").returncode == 0
    for name in _subcommands():
        result = _run(name, "--help")
        assert result.returncode == 0, name
        assert "usage: neuroclip " + name in result.stdout


def test_simulate_writes_a_dataset_inspect_reads_it(tmp_path, capsys):
    out = tmp_path / "c"
    assert main(["simulate", "--out", str(out), "--ma", "1", "--hc", "1", "--minutes", "1"]) == 0
    assert (out / "participants.tsv").is_file()
    assert main(["inspect", "--bids", str(out), "--window", "10"]) == 0
    text = capsys.readouterr().out
    assert "2 subjects (1 MA, 1 HC)" in text and "scalp coupling index" in text


def test_errors_are_one_clear_message_with_exit_code_2(tmp_path):
    result = _run("inspect", str(tmp_path / "missing.snirf"))
    assert result.returncode == 2
    assert "does not exist" in result.stderr and "Fix:" in result.stderr
    assert "Traceback" not in result.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text("cohort:\n  minutes: -1\n")
    result = _run("simulate", "--out", str(tmp_path / "x"), "--config", str(bad))
    assert result.returncode == 2 and "cohort.minutes" in result.stderr
    assert not (tmp_path / "x").exists(), "nothing may start on a bad config"


def test_a_window_longer_than_the_recording_is_refused(recordings):
    result = _run("inspect", str(recordings / "xdf/xdf-examples/minimal.xdf"), "--window", "30")
    assert result.returncode == 2 and "shorter than one window of 30 s" in result.stderr


@pytest.mark.parametrize(
    "rel",
    [
        "snirf/homer_neuro_run01.snirf",
        "eeglab/test_raw.set",
        "xdf/muselsl2/sub-P003_ses-S001_task-Default_run-001_eeg.xdf",
    ],
)
def test_inspect_real_recordings(recordings, rel):
    result = _run("inspect", str(recordings / rel))
    assert result.returncode == 0, result.stderr
    assert "Hz" in result.stdout
