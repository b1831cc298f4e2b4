"""Two sites bridged to a centre: real Mosquitto processes, TLS, per-site credentials.

Each site runs the shipped ``configs/mosquitto/site-bridge.conf`` (names, paths and ports
rewritten); the centre runs the shipped ``tls.conf`` with its ACL. The bridges reach the
centre through a TCP relay the test can cut, so "the bridge drops" is a real broken
connection while every broker stays up. A QoS 1 subscriber at the centre must receive both
sites' scores, each site's in order, and nothing published during a 30 s outage may be lost.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import socket
import ssl
import subprocess
import threading
import time
import uuid
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from tests.conftest import missing_tool
from tests.live_parts import free_port
from tests.streamer.test_tls_broker import SHIPPED, make_certificates

pytestmark = pytest.mark.integration

SITES = ("siteA", "siteB")
SECRETS = {site: f"bridge-{site}-{uuid.uuid4().hex[:8]}" for site in SITES}
READER, READER_SECRET = "dashboard", f"reader-{uuid.uuid4().hex[:8]}"
OUTAGE_S = 30.0


def _mosquitto() -> str:
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    if not Path(binary).exists():
        missing_tool("mosquitto", "scripts/test.sh installs it (apt-get install mosquitto)")
    return binary


def _start(conf: Path, port: int) -> subprocess.Popen:
    proc = subprocess.Popen([_mosquitto(), "-c", str(conf)])
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return proc
        time.sleep(0.05)
    proc.kill()
    pytest.fail(f"mosquitto ({conf}) did not listen on {port}")


class Relay:
    """A TCP relay from ``port`` to ``target``; :meth:`cut` closes every connection and
    stops listening (the bridge sees a dropped link), :meth:`restore` listens again."""

    def __init__(self, target: int):
        self.port, self.target = free_port(), target
        self._server: socket.socket | None = None
        self._pairs: list[tuple[socket.socket, socket.socket]] = []
        self._lock = threading.Lock()

    def restore(self) -> None:
        server = socket.socket()
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", self.port))
        server.listen()
        self._server = server
        threading.Thread(target=self._accept, args=(server,), daemon=True).start()

    def cut(self) -> None:
        with self._lock:
            server, self._server = self._server, None
            pairs, self._pairs = self._pairs, []
        if server is not None:  # shutdown wakes the accept() blocked on it; close alone does not
            with contextlib.suppress(OSError):
                server.shutdown(socket.SHUT_RDWR)
            server.close()
        for a, b in pairs:
            for s in (a, b):
                with contextlib.suppress(OSError):  # already closed by the other side
                    s.shutdown(socket.SHUT_RDWR)
                s.close()

    def _accept(self, server: socket.socket) -> None:
        while True:
            try:
                client, _ = server.accept()
            except OSError:
                return  # cut
            upstream = socket.create_connection(("127.0.0.1", self.target))
            with self._lock:
                self._pairs.append((client, upstream))
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            return  # the relay was cut


def _centre(folder: Path) -> tuple[subprocess.Popen, int]:
    """The shipped tls.conf and ACL; one password per site and the reader's."""
    folder.mkdir()
    make_certificates(folder)
    passwd = shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"
    users = [*SECRETS.items(), (READER, READER_SECRET)]
    for i, (user, secret) in enumerate(users):
        args = [passwd, *(["-c"] if i == 0 else []), "-b", "passwd", user, secret]
        subprocess.run(args, cwd=folder, check=True, capture_output=True, timeout=30)
    shutil.copy(SHIPPED / "acl", folder / "acl")
    port = free_port()
    conf = (SHIPPED / "tls.conf").read_text()
    conf = conf.replace("listener 8883", f"listener {port} 127.0.0.1")
    for path in ("/mosquitto/config/certs/", "/mosquitto/config/", "/mosquitto/data/"):
        conf = conf.replace(path, f"{folder}/")
    (folder / "mosquitto.conf").write_text(
        f"user root\n{conf}\nlog_dest file {folder}/mosquitto.log\n"
    )
    return _start(folder / "mosquitto.conf", port), port


def _site(folder: Path, site: str, relay: Relay, ca: Path) -> tuple[subprocess.Popen, int]:
    """The shipped site-bridge.conf for ``site``, bridging through ``relay``."""
    folder.mkdir()
    port = free_port()
    conf = (SHIPPED / "site-bridge.conf").read_text()
    for old, new in (
        ("listener 1883 127.0.0.1", f"listener {port} 127.0.0.1"),
        ("centre.example.org:8883", f"127.0.0.1:{relay.port}"),
        ("/mosquitto/config/certs/centre-ca.crt", str(ca)),
        ("/mosquitto/data/", f"{folder}/"),
        ("CENTRE_PASSWORD", SECRETS[site]),
        ("SITE", site),
    ):
        assert old in conf, old
        conf = conf.replace(old, new)
    settings = [line for line in conf.splitlines() if line and not line.startswith("#")]
    assert not any("/mosquitto/" in line for line in settings), settings
    (folder / "mosquitto.conf").write_text(
        f"user root\n{conf}\nlog_dest file {folder}/mosquitto.log\n"
    )
    return _start(folder / "mosquitto.conf", port), port


class CentralReader:
    """The centre's QoS 1 subscriber (TLS, the reader's credentials, a persistent session)."""

    def __init__(self, port: int, ca: Path):
        self.seqs: dict[str, list[int]] = {site: [] for site in SITES}
        self.lock = threading.Lock()
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id="centre-reader", clean_session=False
        )
        self.client.username_pw_set(READER, READER_SECRET)
        self.client.tls_set_context(ssl.create_default_context(cafile=str(ca)))
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe("neuroclip/v1/+/+/score", 1)
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def _on_message(self, client, userdata, message) -> None:
        site = message.topic.split("/")[2]
        with self.lock:
            self.seqs[site].append(json.loads(message.payload)["seq"])

    def got(self, site: str) -> list[int]:
        with self.lock:
            return list(self.seqs[site])

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


class RoomPublisher:
    """A room's monitor as the site broker sees it: QoS 1 scores, in order, numbered."""

    def __init__(self, site: str, port: int):
        self.site, self.sent = site, 0
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"room-{site}")
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def publish(self, n: int) -> None:
        for _ in range(n):
            payload = json.dumps({"schema": "neuroclip.score/2", "seq": self.sent})
            info = self.client.publish(f"neuroclip/v1/{self.site}/S1/score", payload, qos=1)
            info.wait_for_publish(5)
            self.sent += 1

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def _wait(predicate, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout_s:g} s waiting for {what}")
        time.sleep(0.1)


def test_two_sites_reach_the_centre_in_order_through_a_30_s_bridge_outage(tmp_path):
    procs: list[subprocess.Popen] = []
    relays: list[Relay] = []
    clients: list = []
    try:
        centre, centre_port = _centre(tmp_path / "centre")
        procs.append(centre)
        ca = tmp_path / "centre" / "ca.crt"
        reader = CentralReader(centre_port, ca)
        clients.append(reader)
        rooms = []
        for site in SITES:
            relay = Relay(centre_port)
            relay.restore()
            relays.append(relay)
            broker, port = _site(tmp_path / site, site, relay, ca)
            procs.append(broker)
            rooms.append(RoomPublisher(site, port))
            clients.append(rooms[-1])
        time.sleep(1.0)  # the bridges connect
        for room in rooms:
            room.publish(20)
        _wait(lambda: all(len(reader.got(s)) >= 20 for s in SITES), 30, "the first scores")

        # the links to the centre drop for 30 s; the rooms keep publishing to their site
        for relay in relays:
            relay.cut()
        outage_end = time.monotonic() + OUTAGE_S
        while time.monotonic() < outage_end:
            for room in rooms:
                room.publish(5)
            time.sleep(1.0)
        during = {s: len(reader.got(s)) for s in SITES}
        for relay in relays:
            relay.restore()
        for room in rooms:
            room.publish(20)
        _wait(
            lambda: all(len(set(reader.got(r.site))) >= r.sent for r in rooms),
            60,
            "every score after the bridges came back",
        )
    finally:
        for client in clients:
            client.close()
        for relay in relays:
            relay.cut()
        for proc in procs:
            proc.terminate()
            proc.wait(10)
    for room in rooms:
        got = reader.got(room.site)
        first_seen = list(dict.fromkeys(got))  # QoS 1 may deliver one twice
        assert first_seen == list(range(room.sent)), f"{room.site}: lost or out of order"
        assert room.sent >= 20 + 5 * 25 + 20
        assert during[room.site] <= 20 + 5, "the outage really cut the bridge"
