"""The embedded MQTT broker, driven by the clients the project uses: aiomqtt and paho-mqtt 2.

Most tests run the broker on its own event loop in a thread and use blocking paho clients,
like the dashboard does; the publisher is aiomqtt, like the monitor. A few raw sockets check
what clients cannot be made to do (garbage, a silent socket, an unacknowledged message).
"""

from __future__ import annotations

import asyncio
import logging
import queue
import re
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import aiomqtt
import paho.mqtt.client as mqtt
import pytest

from models.errors import NeuroclipError
from neuroclip.embedded_broker import EmbeddedBroker, topic_matches, valid_topic_filter

ROOT = "neuroclip/v1/S01/ses1"
NODELAY = [(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)]


class BrokerThread:
    """An EmbeddedBroker on a free loopback port, on its own event loop in a thread."""

    def __init__(self, **kwargs: object) -> None:
        self.broker = EmbeddedBroker(port=0, **kwargs)  # type: ignore[arg-type]
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def __enter__(self) -> BrokerThread:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self.broker.start(), self.loop).result(5)
        return self

    def __exit__(self, *exc_info: object) -> None:
        asyncio.run_coroutine_threadsafe(self.broker.stop(), self.loop).result(5)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()

    @property
    def port(self) -> int:
        return self.broker.port


@pytest.fixture(autouse=True)
def no_errors_logged(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Fail on ERROR records (asyncio logs unhandled task exceptions instead of raising)."""
    yield
    records = caplog.get_records("call") + caplog.get_records("teardown")
    errors = [r.getMessage() for r in records if r.levelno >= logging.ERROR]
    assert not errors, errors


@pytest.fixture
def embedded() -> Iterator[BrokerThread]:
    with BrokerThread() as running:
        yield running


class Subscriber:
    """A paho-mqtt 2 client like the dashboard's, recording every message it receives."""

    def __init__(
        self,
        port: int,
        topic: str | None = "neuroclip/v1/#",
        *,
        client_id: str = "",
        clean: bool = True,
        protocol: int = mqtt.MQTTv311,
        **client_kwargs: object,
    ) -> None:
        self.messages: queue.Queue[mqtt.MQTTMessage] = queue.Queue()
        self.connected, self.subscribed = threading.Event(), threading.Event()
        self.disconnected = threading.Event()
        self.session_present: bool | None = None
        self.reason: mqtt.ReasonCode | None = None
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=client_id,
            clean_session=clean,
            protocol=protocol,
        )
        for key, value in client_kwargs.items():
            getattr(self.client, key)(*value)  # e.g. will_set=(...), username_pw_set=(...)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = lambda *_: self.disconnected.set()
        self.client.on_subscribe = lambda *_: self.subscribed.set()
        self.client.on_message = lambda _c, _u, msg: self.messages.put(msg)
        self.client.connect("127.0.0.1", port, keepalive=10)
        self.client.loop_start()
        assert self.connected.wait(5), "no CONNACK"
        if topic is not None and not self.reason.is_failure:
            self.subscribe(topic)

    def subscribe(self, topic: str) -> None:
        self.subscribed.clear()
        self.client.subscribe(topic, qos=1)
        assert self.subscribed.wait(5), "no SUBACK"

    def _on_connect(self, _client, _userdata, flags, reason, _properties) -> None:
        self.session_present, self.reason = flags.session_present, reason
        self.connected.set()

    def get(self, count: int, timeout: float = 5.0) -> list[mqtt.MQTTMessage]:
        """The next ``count`` messages, failing if they do not all arrive in time."""
        deadline = time.monotonic() + timeout
        got = []
        while len(got) < count:
            try:
                got.append(self.messages.get(timeout=max(0.0, deadline - time.monotonic())))
            except queue.Empty:
                pytest.fail(f"received {len(got)} of {count} messages: {[m.topic for m in got]}")
        return got

    def assert_nothing_more(self, wait: float = 0.2) -> None:
        try:
            extra = self.messages.get(timeout=wait)
        except queue.Empty:
            return
        pytest.fail(f"unexpected message on {extra.topic}: {extra.payload!r}")

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def __enter__(self) -> Subscriber:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def publish(port: int, messages: list[tuple[str, bytes, int, bool]], **kwargs: object) -> None:
    """Publish with aiomqtt as the monitor does (awaiting each PUBACK), then DISCONNECT."""

    async def run() -> None:
        async with aiomqtt.Client(
            "127.0.0.1",
            port,
            identifier=kwargs.pop("identifier", "neuroclip-monitor-S01-ses1"),
            keepalive=10,
            socket_options=NODELAY,
            **kwargs,
        ) as client:
            for topic, payload, qos, retain in messages:
                await client.publish(topic, payload, qos=qos, retain=retain)

    asyncio.run(run())


# --- raw MQTT for what real clients will not do ------------------------------------------


def _text(value: str) -> bytes:
    return struct.pack("!H", len(value)) + value.encode()


def _send(sock: socket.socket, first: int, body: bytes) -> None:
    assert len(body) < 128
    sock.sendall(bytes([first, len(body)]) + body)


def _recv(sock: socket.socket) -> tuple[int, bytes]:
    def exactly(n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = sock.recv(n - len(data))
            assert chunk, "connection closed"
            data += chunk
        return data

    first, length, shift = exactly(1)[0], 0, 0
    while True:
        digit = exactly(1)[0]
        length |= (digit & 0x7F) << shift
        shift += 7
        if not digit & 0x80:
            return first, exactly(length)


def raw_client(port: int, client_id: str, *, clean: bool = True, keepalive: int = 10,
               will: tuple[str, bytes] | None = None) -> tuple[socket.socket, bytes]:  # fmt: skip
    """A connected socket and its CONNACK body (session present, return code)."""
    flags = (0x02 if clean else 0) | (0x2C if will else 0)  # will: QoS 1, retained
    payload = _text(client_id) + (_text(will[0]) + _text(will[1].decode()) if will else b"")
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    _send(sock, 0x10, _text("MQTT") + bytes([4, flags]) + struct.pack("!H", keepalive) + payload)
    first, connack = _recv(sock)
    assert first == 0x20
    return sock, connack


def assert_closed_by_broker(sock: socket.socket) -> None:
    with sock:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                if not sock.recv(4096):
                    return
            except ConnectionResetError:
                return
        pytest.fail("the broker kept the connection open")


# --- tests -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("topic_filter", "topic", "expected"),
    [
        ("sport/tennis/player1/#", "sport/tennis/player1", True),
        ("sport/tennis/player1/#", "sport/tennis/player1/score/wimbledon", True),
        ("sport/#", "sport", True),
        ("#", "sport/tennis", True),
        ("sport/tennis/+", "sport/tennis/player1", True),
        ("sport/tennis/+", "sport/tennis/player1/ranking", False),
        ("sport/tennis/+", "sport/tennis", False),
        ("sport/+", "sport/", True),
        ("+/+", "/finance", True),
        ("/+", "/finance", True),
        ("+", "/finance", False),
        ("sport/tennis", "sport/Tennis", False),
        ("#", "$SYS/uptime", False),
        ("+/monitor/Clients", "$SYS/monitor/Clients", False),
        ("$SYS/#", "$SYS/monitor/Clients", True),
        ("$SYS/monitor/+", "$SYS/monitor/Clients", True),
    ],
)
def test_topic_matches_spec_examples(topic_filter: str, topic: str, expected: bool) -> None:
    assert topic_matches(topic_filter, topic) is expected


def test_valid_topic_filter() -> None:
    for good in ("#", "+", "sport/+/player1", "sport/#", "+/+", "/"):
        assert valid_topic_filter(good), good
    for bad in ("", "sport/tennis#", "sport/#/ranking", "sport+", "a/b+/c", "a\0b"):
        assert not valid_topic_filter(bad), bad


def test_qos1_stream_from_aiomqtt_reaches_paho_in_order(embedded: BrokerThread) -> None:
    scores = [(f"{ROOT}/score", f'{{"seq": {i}}}'.encode(), 1, False) for i in range(1000)]
    quality = [(f"{ROOT}/quality", b"{}", 0, False)]
    status = [(f"{ROOT}/status", b'{"state": "running"}', 1, True)]
    with Subscriber(embedded.port) as dashboard:
        publish(embedded.port, status + scores[:500] + quality + scores[500:])
        got = dashboard.get(1002, timeout=15)
        dashboard.assert_nothing_more()
    received = [m.payload for m in got if m.topic == f"{ROOT}/score"]
    assert received == [payload for _, payload, _, _ in scores]
    assert {m.qos for m in got if m.topic == f"{ROOT}/score"} == {1}
    assert [m.topic for m in got].index(f"{ROOT}/quality") == 501  # order across topics too
    assert not any(m.retain for m in got)  # live deliveries carry retain 0 (MQTT-3.3.1-9)


def test_wildcard_subscriptions_route_by_filter(embedded: BrokerThread) -> None:
    topics = [f"{ROOT}/score", "neuroclip/v1/S02/ses1/score", "neuroclip/v1/S01", "$SYS/load"]
    expected = {
        "neuroclip/v1/+/ses1/score": topics[:2],
        "neuroclip/v1/S01/#": [topics[0], topics[2]],  # '#' also matches its parent level
        "#": topics[:3],  # not the $ topic
        "$SYS/+": topics[3:],
    }
    subscribers = {f: Subscriber(embedded.port, f) for f in expected}
    try:
        subscribers["#"].subscribe("neuroclip/#")  # overlapping: still one copy
        publish(embedded.port, [(t, t.encode(), 1, False) for t in topics])
        for topic_filter, subscriber in subscribers.items():
            got = subscriber.get(len(expected[topic_filter]))
            assert [m.topic for m in got] == expected[topic_filter], topic_filter
            subscriber.assert_nothing_more(0.1)
    finally:
        for subscriber in subscribers.values():
            subscriber.close()


def test_retained_message_delivered_on_subscribe_and_cleared(embedded: BrokerThread) -> None:
    publish(
        embedded.port, [(f"{ROOT}/status", b"running", 1, True), (f"{ROOT}/summary", b"s", 1, True)]
    )
    with Subscriber(embedded.port) as late:
        got = late.get(2)
        assert {(m.topic, m.payload, m.retain, m.qos) for m in got} == {
            (f"{ROOT}/status", b"running", True, 1),
            (f"{ROOT}/summary", b"s", True, 1),
        }
        publish(embedded.port, [(f"{ROOT}/status", b"", 1, True)])  # deletes it...
        assert late.get(1)[0].payload == b""  # ...and still reaches current subscribers
    with Subscriber(embedded.port) as later:
        assert [(m.topic, m.payload) for m in later.get(1)] == [(f"{ROOT}/summary", b"s")]
        later.assert_nothing_more()


WILL_CLIENT = """
import asyncio, sys, aiomqtt
async def main():
    will = aiomqtt.Will(sys.argv[2], b'{"state": "offline"}', qos=1, retain=True)
    async with aiomqtt.Client("127.0.0.1", int(sys.argv[1]), identifier="neuroclip-monitor-S01",
                              keepalive=10, will=will):
        print("ready", flush=True)
        await asyncio.sleep(60)
asyncio.run(main())
"""


def test_last_will_when_publisher_is_killed(embedded: BrokerThread) -> None:
    with Subscriber(embedded.port, f"{ROOT}/status") as dashboard:
        with subprocess.Popen(
            [sys.executable, "-c", WILL_CLIENT, str(embedded.port), f"{ROOT}/status"],
            stdout=subprocess.PIPE,
            text=True,
        ) as monitor:
            assert monitor.stdout is not None
            assert monitor.stdout.readline().strip() == "ready"
            dashboard.assert_nothing_more(0.1)
            monitor.kill()  # no DISCONNECT: the socket is closed by the OS
            monitor.wait(5)
        will = dashboard.get(1)[0]
        assert (will.payload, will.qos) == (b'{"state": "offline"}', 1)
    with Subscriber(embedded.port, f"{ROOT}/status") as later:
        assert later.get(1)[0].retain  # the will was retained


def test_no_last_will_after_clean_disconnect(embedded: BrokerThread) -> None:
    will = aiomqtt.Will(f"{ROOT}/status", b"offline", qos=1, retain=True)
    with Subscriber(embedded.port) as dashboard:
        publish(embedded.port, [(f"{ROOT}/score", b"1", 1, False)], will=will)
        assert dashboard.get(1)[0].topic == f"{ROOT}/score"
        dashboard.assert_nothing_more(0.3)


def test_last_will_when_keepalive_expires(embedded: BrokerThread) -> None:
    with Subscriber(embedded.port, f"{ROOT}/status") as dashboard:
        silent, connack = raw_client(embedded.port, "silent", keepalive=1,
                                     will=(f"{ROOT}/status", b"lost"))  # fmt: skip
        assert connack == b"\x00\x00"
        started = time.monotonic()
        assert dashboard.get(1, timeout=4)[0].payload == b"lost"
        assert 1.4 < time.monotonic() - started < 3.0  # 1.5 x keepalive
        assert_closed_by_broker(silent)


def test_persistent_session_gets_missed_messages_in_order(embedded: BrokerThread) -> None:
    first = Subscriber(embedded.port, client_id="dash-persistent", clean=False)
    publish(embedded.port, [(f"{ROOT}/score", b"before", 1, False)])
    assert first.get(1)[0].payload == b"before"
    first.close()
    missed = [(f"{ROOT}/score", str(i).encode(), 1, False) for i in range(200)]
    publish(embedded.port, [*missed[:100], (f"{ROOT}/quality", b"q0", 0, False), *missed[100:]])
    with Subscriber(embedded.port, None, client_id="dash-persistent", clean=False) as again:
        assert again.session_present
        assert [m.payload for m in again.get(200)] == [p for _, p, _, _ in missed]
        again.assert_nothing_more()  # QoS 0 is not queued offline
    with Subscriber(embedded.port, None, client_id="dash-persistent", clean=True) as clean:
        assert not clean.session_present
        publish(embedded.port, [(f"{ROOT}/score", b"after", 1, False)])
        clean.assert_nothing_more()  # a clean session forgot the subscription


def test_offline_queue_keeps_the_newest(caplog: pytest.LogCaptureFixture) -> None:
    with BrokerThread(max_queued=5) as small:
        Subscriber(small.port, client_id="slow", clean=False).close()
        publish(small.port, [(f"{ROOT}/score", str(i).encode(), 1, False) for i in range(8)])
        with Subscriber(small.port, None, client_id="slow", clean=False) as again:
            assert [m.payload for m in again.get(5)] == [b"3", b"4", b"5", b"6", b"7"]
    assert "dropped its oldest (1 dropped so far)" in caplog.text


def test_unacknowledged_qos1_is_resent_with_dup(embedded: BrokerThread) -> None:
    sock, connack = raw_client(embedded.port, "forgetful", clean=False)
    assert connack == b"\x00\x00"
    with sock:
        _send(sock, 0x82, struct.pack("!H", 1) + _text("t/#") + b"\x01")
        assert _recv(sock) == (0x90, b"\x00\x01\x01")
        publish(embedded.port, [("t/a", b"one", 1, False)])
        first, body = _recv(sock)
    assert first == 0x32  # QoS 1, no DUP; never acknowledged, then the socket closes
    sock, connack = raw_client(embedded.port, "forgetful", clean=False)
    with sock:
        assert connack == b"\x01\x00"  # session present
        assert _recv(sock) == (0x3A, body)  # same packet id and payload, DUP set
        _send(sock, 0x40, body[5:7])  # PUBACK
        _send(sock, 0xE0, b"")


def test_malformed_packets_close_only_that_connection(
    embedded: BrokerThread, caplog: pytest.LogCaptureFixture
) -> None:
    with Subscriber(embedded.port) as dashboard:
        for garbage in (b"GET / HTTP/1.1\r\n\r\n", b"\x10\xff\xff\xff\xff\x01", b"\x00\x00"):
            sock = socket.create_connection(("127.0.0.1", embedded.port), timeout=5)
            sock.sendall(garbage)
            assert_closed_by_broker(sock)
        sock, _ = raw_client(embedded.port, "bad-publisher")
        sock.sendall(b"\x36\x03\x00\x01t")  # PUBLISH with QoS 3
        assert_closed_by_broker(sock)
        sock = socket.create_connection(("127.0.0.1", embedded.port), timeout=5)
        _send(sock, 0x10, _text("MQTT") + bytes([9, 2, 0, 10]) + _text("future"))
        assert _recv(sock) == (0x20, b"\x00\x01")  # unacceptable protocol level
        assert_closed_by_broker(sock)
        publish(embedded.port, [(f"{ROOT}/score", b"still here", 1, False)])
        assert dashboard.get(1)[0].payload == b"still here"
    assert "malformed or forbidden packet" in caplog.text


def test_busy_port_raises_a_clear_error() -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        with pytest.raises(NeuroclipError, match=f"127.0.0.1:{port}") as info:
            asyncio.run(EmbeddedBroker(port=port).start())
    assert info.value.fix and "port" in info.value.fix


def test_qos2_publisher_is_acknowledged_and_delivered_once(embedded: BrokerThread) -> None:
    with Subscriber(embedded.port) as dashboard, Subscriber(embedded.port, None) as publisher:
        info = publisher.client.publish(f"{ROOT}/event", b"marker", qos=2)
        info.wait_for_publish(5)  # PUBREC, PUBREL, PUBCOMP
        assert info.is_published()
        assert [(m.payload, m.qos) for m in dashboard.get(1)] == [(b"marker", 1)]
        dashboard.assert_nothing_more()


def test_credentials_are_checked_when_configured() -> None:
    with BrokerThread(username="neuro", password="s3cret") as secured:
        with Subscriber(secured.port, username_pw_set=("neuro", "wrong")) as wrong:
            assert wrong.reason == "Bad user name or password"
        with Subscriber(secured.port) as anonymous:
            assert anonymous.reason == "Not authorized"
        with Subscriber(secured.port, username_pw_set=("neuro", "s3cret")) as good:
            assert not good.reason.is_failure
            publish(secured.port, [("neuroclip/v1/x", b"ok", 1, False)],
                    username="neuro", password="s3cret")  # fmt: skip
            assert good.get(1)[0].payload == b"ok"


def test_same_client_id_takes_over_without_will(embedded: BrokerThread) -> None:
    with Subscriber(embedded.port, f"{ROOT}/status") as dashboard:
        old = Subscriber(embedded.port, None, client_id="monitor",
                         will_set=(f"{ROOT}/status", b"offline", 1, True))  # fmt: skip
        with Subscriber(embedded.port, "neuroclip/v1/#", client_id="monitor") as new:
            assert old.disconnected.wait(5)
            old.close()
            dashboard.assert_nothing_more()
            publish(embedded.port, [(f"{ROOT}/status", b"running", 1, True)])
            assert new.get(1)[0].payload == b"running"


def test_mqtt_31_clients_are_accepted(embedded: BrokerThread) -> None:
    with Subscriber(embedded.port, protocol=mqtt.MQTTv31, client_id="old-client") as old:
        publish(embedded.port, [(f"{ROOT}/score", b"3.1", 1, False)])
        assert old.get(1)[0].payload == b"3.1"


@pytest.mark.asyncio
async def test_async_context_manager_with_aiomqtt() -> None:
    async with EmbeddedBroker(port=0) as broker:
        assert broker.port > 0
        async with aiomqtt.Client("127.0.0.1", broker.port, identifier="a") as client:
            (conn,) = broker._connections
            sock = conn.writer.get_extra_info("socket")
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
            await client.subscribe("neuroclip/v1/#", qos=1)
            await client.publish(f"{ROOT}/score", b"42", qos=1)
            async with asyncio.timeout(5):
                msg = await anext(aiter(client.messages))
            assert (str(msg.topic), msg.payload, msg.qos) == (f"{ROOT}/score", b"42", 1)


def test_run_broker_as_a_child_process() -> None:
    with subprocess.Popen(
        [sys.executable, "-m", "neuroclip.embedded_broker", "--port", "0"],
        stderr=subprocess.PIPE,
        text=True,
    ) as child:
        assert child.stderr is not None
        line = child.stderr.readline()
        port = int(re.search(r"listening on 127\.0\.0\.1:(\d+)", line).group(1))
        with Subscriber(port) as dashboard:
            publish(port, [(f"{ROOT}/score", b"child", 1, False)])
            assert dashboard.get(1)[0].payload == b"child"
        child.send_signal(signal.SIGTERM)
        assert child.wait(5) == 0
        assert "stopped" in child.stderr.read()


def test_logs_use_the_module_logger(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="neuroclip.embedded_broker")
    with BrokerThread() as running:
        Subscriber(running.port, client_id="named").close()
    assert any(
        "'named'" in r.getMessage() and "connected" in r.getMessage() for r in caplog.records
    )
