"""The deployment files agree with the code: the Dockerfile, docker-compose.yml, the broker
configurations, and a fresh non-editable install as the image makes it.

These are the quick checks; the image itself is built and run by ``scripts/image-test.sh``
(Podman), which ``scripts/test.sh`` runs after the suite.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys

import pytest
import yaml

from neuroclip.cli import build_parser
from tests.conftest import REPO

COMPOSE = yaml.safe_load((REPO / "docker-compose.yml").read_text())
DOCKERFILE = (REPO / "Dockerfile").read_text()


def _instructions(name: str) -> list[str]:
    joined = DOCKERFILE.replace("\\\n", " ")
    return [line.split(None, 1)[1] for line in joined.splitlines() if line.startswith(name + " ")]


def test_every_file_the_dockerfile_copies_exists_and_nothing_ignored_is_needed():
    ignored = (REPO / ".dockerignore").read_text().split()
    for copy in _instructions("COPY"):
        if copy.startswith("--from"):
            continue
        *sources, _ = copy.split()
        for source in sources:
            assert (REPO / source).exists(), f"Dockerfile copies {source}, which is missing"
            assert source not in ignored, f".dockerignore hides {source} from the build"


def test_the_image_command_is_a_valid_monitor_command_on_a_shipped_config():
    cmd = yaml.safe_load(_instructions("CMD")[0])
    entry = yaml.safe_load(_instructions("ENTRYPOINT")[0])
    assert entry == ["neuroclip"]
    args = build_parser().parse_args(cmd)
    assert args.command == "monitor" and (REPO / args.config).is_file()
    assert "torch" in DOCKERFILE and "exit 1" in DOCKERFILE, "the build must refuse torch"
    assert "ARG CUDA=0" in DOCKERFILE and "onnxruntime-gpu" in DOCKERFILE


@pytest.mark.parametrize("service", ["patient", "monitor", "dashboard"])
def test_each_compose_service_runs_a_valid_command_with_real_settings(service):
    spec = COMPOSE["services"][service]
    args = build_parser().parse_args(spec["command"])
    config = getattr(args, "config", None)
    if config is not None:
        assert (REPO / config).is_file(), config
    section = {"monitor": "MONITOR", "dashboard": "DASHBOARD", "patient": "SIMULATE"}[service]
    for key in spec.get("environment", {}):
        if key.startswith("NEUROCLIP_"):
            assert key.startswith(f"NEUROCLIP_{section}__"), key
    _load_with(service, spec.get("environment", {}), config)


def _load_with(service: str, environment: dict, config: str) -> None:
    """Load the service's configuration with its environment: unknown keys or bad values
    would be refused here exactly as in the container."""
    from contract.settings import load_config
    from dashboard.config import DashboardConfig
    from models.simulation.config import SimulationConfig
    from streamer.config import MonitorConfig

    cls = {"monitor": MonitorConfig, "dashboard": DashboardConfig, "patient": SimulationConfig}
    cls = cls[service]
    env = {k: str(v) for k, v in environment.items() if k.startswith("NEUROCLIP_")}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        name = "simulate" if service == "patient" else service
        load_config(cls, REPO / config if config else None, name=name)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def test_compose_mounts_only_files_that_exist_and_publishes_on_loopback():
    for name, spec in COMPOSE["services"].items():
        for volume in spec.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (REPO / source).exists(), f"{name} mounts {source}, which is missing"
        for port in spec.get("ports", []):
            assert port.startswith("127.0.0.1:"), f"{name} publishes {port} beyond loopback"


def test_the_shipped_broker_configs_name_only_known_mosquitto_options():
    known = {
        "listener", "allow_anonymous", "set_tcp_nodelay", "persistence", "persistence_location",
        "autosave_interval", "cafile", "certfile", "keyfile", "tls_version", "password_file",
        "acl_file",
        # the site bridge (tests/streamer/test_bridge.py runs it: mosquitto refuses unknown ones)
        "max_queued_messages", "max_inflight_messages", "connection", "address",
        "bridge_cafile", "bridge_tls_version", "bridge_insecure", "remote_clientid",
        "remote_username", "remote_password", "topic", "cleansession",
        "bridge_protocol_version", "try_private", "keepalive_interval", "restart_timeout",
        "notifications", "notifications_local_only",
    }  # fmt: skip
    for conf in [
        REPO / "configs" / "mosquitto.conf",
        *(REPO / "configs" / "mosquitto").glob("*.conf"),
    ]:
        for line in conf.read_text().splitlines():
            if line.strip() and not line.startswith("#"):
                assert line.split()[0] in known, f"{conf.name}: {line}"
    acl = (REPO / "configs" / "mosquitto" / "acl").read_text()
    assert re.search(r"^pattern write neuroclip/v1/%u/#$", acl, re.M)


@pytest.mark.integration
def test_a_fresh_runtime_install_has_no_torch_and_carries_the_default_model(tmp_path):
    """What the image's build stage does, in a venv: ``pip install .`` (no extras)."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet"]
    done = subprocess.run(
        [*pip, str(REPO)], capture_output=True, text=True, timeout=900, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr[-3000:]
    python = str(venv / "bin" / "python")
    probe = (
        "import importlib.util, models.bundle as b;"
        "assert importlib.util.find_spec('torch') is None, 'torch in the runtime install';"
        "bundle = b.load_bundle(b.DEFAULT_BUNDLE);"
        "print(bundle.path, bundle.sha256)"
    )
    done = subprocess.run([python, "-c", probe], capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "site-packages" in done.stdout, done.stdout
    cli = venv / "bin" / "neuroclip"
    for command in ("monitor", "dashboard", "replay", "simulate"):
        done = subprocess.run(
            [str(cli), *shlex.split(command), "--help"], capture_output=True, text=True
        )
        assert done.returncode == 0, (command, done.stderr[-2000:])
