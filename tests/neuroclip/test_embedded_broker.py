"""The demo's amqtt broker, as a child process, driven by the clients the project uses.

The monitor publishes with aiomqtt (QoS 1, a retained status, a last will that says
``offline``); the dashboard subscribes with paho-mqtt 2. What the demo relies on must hold:
retained messages reach a late subscriber, QoS 1 messages arrive in order, and the will is
published when the monitor's connection dies without a goodbye.
"""

from __future__ import annotations

import asyncio
import queue
import signal
import subprocess
import sys
import threading
import time

import aiomqtt
import paho.mqtt.client as mqtt
import pytest

from tests.conftest import REPO
from tests.live_parts import free_port

ROOT = "neuroclip/v1/lab/S01"


@pytest.fixture
def amqtt_broker():
    """``python -m neuroclip.embedded_broker`` on a free loopback port."""
    port = free_port()
    child = subprocess.Popen(
        [sys.executable, "-m", "neuroclip.embedded_broker", "--port", str(port)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.monotonic() + 20.0
    while not _listening(port):
        assert child.poll() is None, child.communicate()[0]
        assert time.monotonic() < deadline, f"amqtt did not listen on {port} within 20 s"
        time.sleep(0.1)
    yield port
    child.send_signal(signal.SIGTERM)
    output = child.communicate(timeout=10)[0]
    assert child.returncode == 0, output
    assert "Traceback" not in output, output


def _listening(port: int) -> bool:
    import socket

    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


class Dashboard:
    """A paho-mqtt 2 subscriber, as dashboard/feed.py connects."""

    def __init__(self, port: int):
        self.messages: queue.Queue[mqtt.MQTTMessage] = queue.Queue()
        subscribed = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311)
        self.client.on_subscribe = lambda *_: subscribed.set()
        self.client.on_message = lambda _c, _u, msg: self.messages.put(msg)
        self.client.on_connect = lambda c, *_: c.subscribe("neuroclip/v1/#", qos=1)
        self.client.connect("127.0.0.1", port, keepalive=10)
        self.client.loop_start()
        assert subscribed.wait(10), "no SUBACK from amqtt"

    def get(self, count: int, timeout: float = 10.0) -> list[mqtt.MQTTMessage]:
        deadline = time.monotonic() + timeout
        got = []
        while len(got) < count:
            try:
                got.append(self.messages.get(timeout=max(0.0, deadline - time.monotonic())))
            except queue.Empty:
                pytest.fail(f"received {len(got)} of {count}: {[m.topic for m in got]}")
        return got

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


_MONITOR = """
import asyncio, sys, aiomqtt
async def main(port):
    will = aiomqtt.Will("{root}/status", b'{{"state": "offline"}}', qos=1, retain=True)
    async with aiomqtt.Client("127.0.0.1", port, identifier="monitor", will=will) as c:
        await c.publish("{root}/status", b'{{"state": "online"}}', qos=1, retain=True)
        print("published", flush=True)
        await asyncio.sleep(60)
asyncio.run(main(int(sys.argv[1])))
"""


def test_retained_status_qos1_order_and_the_last_will(amqtt_broker):
    port = amqtt_broker
    # a monitor that is killed: no DISCONNECT, so the broker must publish its will
    monitor = subprocess.Popen(
        [sys.executable, "-c", _MONITOR.format(root=ROOT), str(port)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert monitor.stdout.readline().strip() == "published"
    dashboard = Dashboard(port)
    try:
        first = dashboard.get(1)[0]
        assert (first.topic, first.payload, first.retain) == (
            f"{ROOT}/status",
            b'{"state": "online"}',
            True,
        ), "a late subscriber gets the retained status"
        monitor.kill()
        monitor.wait(5)
        will = dashboard.get(1)[0]
        assert (will.topic, will.payload) == (f"{ROOT}/status", b'{"state": "offline"}')

        async def scores() -> None:
            async with aiomqtt.Client("127.0.0.1", port, identifier="monitor2") as c:
                for i in range(50):
                    await c.publish(f"{ROOT}/score", str(i).encode(), qos=1)

        asyncio.run(scores())
        got = dashboard.get(50)
        assert [int(m.payload) for m in got] == list(range(50)), "QoS 1 in order, none lost"
    finally:
        dashboard.close()
        monitor.kill()
        monitor.communicate()
