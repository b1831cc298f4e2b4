"""Refusals at start: a malformed configuration, a tampered bundle, a bundle for other channels.

Each runs the real ``neuroclip monitor`` (without torch) and expects exit status 2, a message
that names the file and the field, a ``Fix:`` line, and no traceback.
"""

from __future__ import annotations

import json
import shutil

import pytest

from tests.conftest import REPO
from tests.live_parts import monitor_config, start_monitor, start_simulator, stop, unique

pytestmark = pytest.mark.integration

DEFAULT_BUNDLE = REPO / "models" / "default_bundle"


def _refusal(config, lsl_env, timeout_s: float = 60.0) -> str:
    mon = start_monitor(config, lsl_env)
    try:
        mon.wait(timeout_s)
    finally:
        out = stop(mon)
    assert mon.returncode == 2, out[-3000:]
    assert "Fix:" in out and "Traceback" not in out, out[-3000:]
    return out


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("site: lab\nwindows: {hop_s: 1.0\n", "line"),  # YAML syntax: an unclosed mapping
        ("site: lab\nwindows:\n  hop_seconds: 1.0\n", "windows.hop_seconds"),  # unknown key
        ("site: lab\nwindows:\n  max_wait_s: soon\n", "windows.max_wait_s"),  # wrong type
        ("site: lab\nsession: Jane Doe\n", "session"),  # not a pseudonymous token
        ("mqtt:\n  password: hunter2-in-a-file\n", "NEUROCLIP_MONITOR__MQTT__PASSWORD"),
    ],
    ids=["yaml-syntax", "unknown-key", "wrong-type", "name-as-session", "secret-in-file"],
)
def test_a_malformed_configuration_is_refused_naming_the_file_and_key(
    tmp_path, lsl_env, text, named
):
    config = tmp_path / "monitor.yaml"
    config.write_text(text)
    out = _refusal(config, lsl_env, 30.0)
    assert str(config) in out and named in out, out[-2000:]
    assert "hunter2" not in out, "a secret must never be echoed"


def _bundle_copy(tmp_path):
    bundle = tmp_path / "bundle"
    shutil.copytree(DEFAULT_BUNDLE, bundle)
    return bundle


def test_a_tampered_bundle_is_refused_before_any_stream_is_read(tmp_path, lsl_env):
    bundle = _bundle_copy(tmp_path)
    model = bundle / "model.onnx"
    data = bytearray(model.read_bytes())
    data[len(data) // 2] ^= 0x01  # one bit, as a damaged copy or a swapped weight
    model.write_bytes(bytes(data))
    config = monitor_config(
        tmp_path, unique("TMP"), unique("s"), None, **{"model.bundle": str(bundle)}
    )
    out = _refusal(config, lsl_env, 30.0)
    assert "sha256" in out and "model_sha256" in out, out[-2000:]
    assert "No LSL" not in out, "the bundle must be checked before waiting for streams"


def test_a_bundle_for_other_channels_is_refused_when_the_streams_are_seen(tmp_path, lsl_env):
    bundle = _bundle_copy(tmp_path)
    meta = json.loads((bundle / "bundle.json").read_text())
    channels = meta["inputs"]["eeg"]["channels"]
    channels[channels.index("Fz")] = "FCz"  # a montage the simulator does not have
    (bundle / "bundle.json").write_text(json.dumps(meta, indent=2))
    prefix = unique("OTH")
    sim = start_simulator(prefix, lsl_env, duration_s=60.0)
    try:
        config = monitor_config(
            tmp_path, prefix, unique("s"), None, **{"model.bundle": str(bundle)}
        )
        out = _refusal(config, lsl_env)
    finally:
        stop(sim)
    assert "inputs.eeg.channels" in out and "FCz" in out, out[-2000:]
