"""The monitor on a broker that clinics would run: TLS, passwords and an ACL per site.

A real Mosquitto listens with TLS only (a CA and a server certificate made here with the
openssl command), refuses anonymous clients and lets the monitor's user write only under
``neuroclip/v1/room1/#``. A monitor for room1 reaches a TLS subscriber and the dashboard's
feed; the same user publishing as room2 is dropped by the ACL; the password never shows in
the monitor's output.
"""

from __future__ import annotations

import json
import shutil
import socket
import ssl
import subprocess
import threading
import time
import uuid

import paho.mqtt.client as mqtt
import pytest

from dashboard.config import BrokerConfig
from dashboard.feed import BrokerFeed
from dashboard.store import SnapshotStore
from tests.conftest import REPO, missing_tool
from tests.live_parts import (
    free_port,
    monitor_config,
    start_monitor,
    start_simulator,
    stop,
    unique,
)

# the shipped ACL's convention: a monitor's user name is its site; readers log in as dashboard
MONITOR_USER, MONITOR_SECRET = "room1", f"s3cret-{uuid.uuid4().hex[:8]}"
READER_USER, READER_SECRET = "dashboard", f"r3ader-{uuid.uuid4().hex[:8]}"
SHIPPED = REPO / "configs" / "mosquitto"


def _run(*argv: str, cwd) -> None:
    done = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


def make_certificates(folder) -> None:
    """A throw-away CA and a server certificate for 127.0.0.1."""
    if shutil.which("openssl") is None:
        missing_tool("openssl", "scripts/test.sh installs it with apt-get")
    _run(
        "openssl",
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        "-days",
        "2",
        "-subj",
        "/CN=neuroclip-test-ca",
        cwd=folder,
    )
    _run(
        "openssl",
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=localhost",
        cwd=folder,
    )
    (folder / "san.cnf").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    _run(
        "openssl",
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.crt",
        "-days",
        "2",
        "-extfile",
        "san.cnf",
        cwd=folder,
    )


@pytest.fixture
def tls_broker(tmp_path):
    folder = tmp_path / "broker"
    folder.mkdir()
    make_certificates(folder)
    passwd = shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"
    _run(passwd, "-c", "-b", "passwd", MONITOR_USER, MONITOR_SECRET, cwd=folder)
    _run(passwd, "-b", "passwd", READER_USER, READER_SECRET, cwd=folder)
    # the shipped configuration and ACL, with the image's paths moved into the test folder
    shutil.copy(SHIPPED / "acl", folder / "acl")
    port = free_port()
    conf = (SHIPPED / "tls.conf").read_text()
    conf = conf.replace("listener 8883", f"listener {port} 127.0.0.1")
    conf = conf.replace("/mosquitto/config/certs/", f"{folder}/")
    conf = conf.replace("/mosquitto/config/", f"{folder}/")
    conf = conf.replace("/mosquitto/data/", f"{folder}/")
    settings = [line for line in conf.splitlines() if line and not line.startswith("#")]
    assert not any("/mosquitto/" in line for line in settings), settings
    (folder / "mosquitto.conf").write_text(
        f"user root\n{conf}\nlog_dest file {folder}/mosquitto.log\n"
    )
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    proc = subprocess.Popen([binary, "-c", str(folder / "mosquitto.conf")])
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                break
        time.sleep(0.05)
    yield port, folder / "ca.crt"
    proc.terminate()
    proc.wait(10)


class TlsReader:
    """A TLS subscriber with the reader's credentials."""

    def __init__(self, port: int, ca):
        self.messages: list[tuple[str, dict]] = []
        self.lock = threading.Lock()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="tls-reader")
        self.client.username_pw_set(READER_USER, READER_SECRET)
        self.client.tls_set_context(ssl.create_default_context(cafile=str(ca)))
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe("neuroclip/v1/#", qos=1)
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def _on_message(self, client, userdata, message) -> None:
        with self.lock:
            self.messages.append((message.topic, json.loads(message.payload)))

    def scores(self, site: str) -> list[dict]:
        with self.lock:
            return [
                m
                for t, m in self.messages
                if t.startswith(f"neuroclip/v1/{site}/") and t.endswith("/score")
            ]

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def test_tls_password_and_acl_keep_each_site_to_its_topics(tmp_path, tls_broker, lsl_env):
    port, ca = tls_broker
    prefix = unique("TLS")
    simulator = start_simulator(prefix, lsl_env, duration_s=120.0)
    env = {**lsl_env, "NEUROCLIP_MONITOR__MQTT__PASSWORD": MONITOR_SECRET}
    monitors = []
    reader = TlsReader(port, ca)
    store = SnapshotStore()
    feed = BrokerFeed(
        BrokerConfig(port=port, tls=True, ca_file=ca, username=READER_USER, password=READER_SECRET),
        store,
    )
    feed.start()
    try:
        for site in ("room1", "room2"):
            folder = tmp_path / site
            folder.mkdir()
            config = monitor_config(
                folder,
                prefix,
                "S1",
                port,
                **{
                    "site": site,
                    "mqtt.tls": True,
                    "mqtt.ca_file": str(ca),
                    "mqtt.username": MONITOR_USER,
                },
            )
            monitors.append(start_monitor(config, env))
        deadline = time.monotonic() + 90
        while len(reader.scores("room1")) < 5:
            assert time.monotonic() < deadline, "no room1 score reached the TLS subscriber"
            assert all(m.poll() is None for m in monitors), [stop(m) for m in monitors]
            time.sleep(0.2)
        time.sleep(2.0)
        assert feed.state.snapshot(store).connected, "the dashboard's feed over TLS"
        dashboard_view = store.session("room1/S1")
        assert dashboard_view is not None and dashboard_view.history.count >= 1
    finally:
        feed.stop()
        reader.close()
        outputs = [stop(m) for m in monitors]
        stop(simulator)
    assert all(s["site"] == "room1" for s in reader.scores("room1"))
    assert reader.scores("room2") == [], "the ACL must drop room2 from the room1 user"
    room2_log = list((tmp_path / "room2" / "logs").rglob("*.scores.jsonl"))
    assert room2_log and room2_log[0].read_text().strip(), "room2 still logs its scores"
    for out in outputs:
        assert MONITOR_SECRET not in out, "the broker password was logged"
        assert "Traceback" not in out, out
