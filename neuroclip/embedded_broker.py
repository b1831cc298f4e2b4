"""A small MQTT 3.1.1 broker in pure asyncio, for ``neuroclip demo`` when Mosquitto is absent.

It serves the monitor (aiomqtt) and the dashboard (paho-mqtt) on one machine, so a demo runs
with nothing but this package installed. It is not for production: use Mosquitto there.

Supported (OASIS MQTT 3.1.1; protocol level 3 "MQIsdp" is accepted too):

* CONNECT/CONNACK with the session-present flag; credentials are checked only when the broker
  is given some (return code 5 when missing, 4 when wrong), otherwise ignored.
* PUBLISH at QoS 0 and 1 with PUBACK. A QoS 2 publisher gets a correct PUBREC/PUBREL/PUBCOMP
  exchange (a re-sent PUBLISH awaiting its PUBREL is not routed twice), but the message is
  delivered at QoS 1 at most: subscriptions are granted ``min(requested, 1)``.
* SUBSCRIBE/SUBACK, UNSUBSCRIBE/UNSUBACK, PINGREQ/PINGRESP, DISCONNECT; ``+`` and ``#``
  filters per the spec (``a/#`` matches ``a``; leading wildcards skip ``$`` topics).
* Retained messages per topic (an empty retained payload deletes), sent on subscribe with the
  retain flag set.
* Last will, published when a connection ends without DISCONNECT: closed socket, I/O error,
  malformed packet, or no packet for 1.5 x keepalive. A client-id takeover closes the old
  connection without its will, as Mosquitto does: the client is back, not gone.
* Persistent sessions (clean session 0) keep subscriptions, unacknowledged QoS 1 messages
  (re-sent with DUP on reconnect) and a queue of QoS 1 messages missed while offline
  (``max_queued`` per client, the oldest dropped with a counted warning), in order.

Not supported: QoS 2 delivery to subscribers, TLS, WebSockets, MQTT 5, persistence to disk
(a restart forgets retained messages and sessions), session expiry, ACLs, ``$SYS`` topics.
"""

from __future__ import annotations

import argparse
import asyncio
import hmac
import logging
import secrets
import signal
import socket
import struct
from collections import deque
from dataclasses import dataclass

from models.errors import NeuroclipError

logger = logging.getLogger(__name__)

CONNECT, CONNACK, PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP = range(1, 8)
SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK, PINGREQ, PINGRESP, DISCONNECT = range(8, 15)
_FLAGS = {PUBREL: 2, SUBSCRIBE: 2, UNSUBSCRIBE: 2}  # fixed-header flags required (MQTT-2.2.2)

MAX_PACKET_BYTES = 16 * 1024 * 1024  # refuse larger packets instead of buffering garbage
CONNECT_TIMEOUT_S = 10.0  # a socket that sends no CONNECT within this is closed
MAX_INFLIGHT = 100  # unacknowledged QoS 1 messages per client before it must PUBACK


class ProtocolError(Exception):
    """A packet is malformed or forbidden: the connection that sent it is closed."""


@dataclass(frozen=True, slots=True)
class Message:
    """An application message as routed; ``qos`` is already capped at 1."""

    topic: str
    payload: bytes
    qos: int
    retain: bool = False


def topic_matches(topic_filter: str, topic: str) -> bool:
    """Whether ``topic`` matches ``topic_filter`` (``+`` one level, ``#`` this level and below)."""
    if topic.startswith("$") and topic_filter[:1] in ("+", "#"):
        return False  # MQTT-4.7.2-1
    levels, parts = topic_filter.split("/"), topic.split("/")
    for i, level in enumerate(levels):
        if level == "#":
            return True
        if i >= len(parts) or (level != "+" and level != parts[i]):
            return False
    return len(levels) == len(parts)


def valid_topic_filter(topic_filter: str) -> bool:
    """Whether a SUBSCRIBE filter is well formed: wildcards alone in their level, ``#`` last."""
    if not topic_filter or "\0" in topic_filter:
        return False
    levels = topic_filter.split("/")
    for i, level in enumerate(levels):
        if ("#" in level and (level != "#" or i != len(levels) - 1)) or (
            "+" in level and level != "+"
        ):
            return False
    return True


def valid_topic_name(topic: str) -> bool:
    """Whether a PUBLISH topic is well formed: not empty, no wildcard, no NUL."""
    return bool(topic) and not any(c in topic for c in "+#\0")


def _packet(first_byte: int, body: bytes = b"") -> bytes:
    size, length = len(body), bytearray()
    while True:
        size, digit = divmod(size, 128)
        length.append(digit | (0x80 if size else 0))
        if not size:
            return bytes([first_byte]) + bytes(length) + body


def _text(value: str) -> bytes:
    data = value.encode()
    return struct.pack("!H", len(data)) + data


def _publish_packet(msg: Message, packet_id: int, *, dup: bool) -> bytes:
    first = PUBLISH << 4 | dup << 3 | msg.qos << 1 | msg.retain
    pid = struct.pack("!H", packet_id) if msg.qos else b""
    return _packet(first, _text(msg.topic) + pid + msg.payload)


class _Fields:
    """Sequential reader of a packet's variable header and payload."""

    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise ProtocolError("packet shorter than its fields")
        self.pos += n
        return self.data[self.pos - n : self.pos]

    def u8(self) -> int:
        return self.take(1)[0]

    def u16(self) -> int:
        return struct.unpack("!H", self.take(2))[0]

    def binary(self) -> bytes:
        return self.take(self.u16())

    def text(self) -> str:
        try:
            value = self.binary().decode()
        except UnicodeDecodeError as exc:
            raise ProtocolError(f"string is not UTF-8: {exc}") from None
        if "\0" in value:
            raise ProtocolError("string contains U+0000")
        return value

    def rest(self) -> bytes:
        return self.take(len(self.data) - self.pos)

    @property
    def exhausted(self) -> bool:
        return self.pos >= len(self.data)


async def _read_packet(
    reader: asyncio.StreamReader, *, first_packet: bool = False
) -> tuple[int, int, bytes]:
    """One packet as (type, fixed-header flags, rest); EOF raises IncompleteReadError.

    The first byte is checked before the rest is awaited, so a socket that speaks something
    else (HTTP, garbage) is refused at once instead of when its announced length arrives.
    """
    first = (await reader.readexactly(1))[0]
    ptype, flags = first >> 4, first & 0x0F
    if first_packet and first != CONNECT << 4:
        raise ProtocolError(f"first byte {first:#04x} is not CONNECT")
    if ptype != PUBLISH and flags != _FLAGS.get(ptype, 0):
        raise ProtocolError(f"packet type {ptype} with flags {flags:#x}")
    length = 0
    for shift in range(0, 28, 7):
        digit = (await reader.readexactly(1))[0]
        length |= (digit & 0x7F) << shift
        if not digit & 0x80:
            break
    else:
        raise ProtocolError("remaining length longer than 4 bytes")
    if length > MAX_PACKET_BYTES:
        raise ProtocolError(f"packet of {length} bytes exceeds {MAX_PACKET_BYTES}")
    return ptype, flags, await reader.readexactly(length)


class _Session:
    """What the broker keeps for one client id: subscriptions and undelivered messages."""

    def __init__(self, client_id: str, clean: bool, max_queued: int) -> None:
        self.client_id, self.clean, self.max_queued = client_id, clean, max_queued
        self.subscriptions: dict[str, int] = {}  # filter -> granted QoS
        self.pending: deque[Message] = deque()  # not yet sent, in order
        self.inflight: dict[int, Message] = {}  # sent at QoS 1, awaiting PUBACK, in order
        self.qos2_ids: set[int] = set()  # QoS 2 publishes received, awaiting PUBREL
        self.wake = asyncio.Event()
        self.conn: _Connection | None = None
        self.dropped = 0
        self._last_id = 0

    def granted_qos(self, topic: str) -> int | None:
        """Highest QoS among the matching subscriptions (one copy per message), or None."""
        return max(
            (q for f, q in self.subscriptions.items() if topic_matches(f, topic)), default=None
        )

    def enqueue(self, msg: Message) -> None:
        """Queue ``msg`` for delivery; offline, only QoS 1 is kept; full, the oldest goes."""
        if self.conn is None and msg.qos == 0:
            return
        if len(self.pending) >= self.max_queued:
            self.pending.popleft()
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 1000 == 0:
                logger.warning(
                    "client %r: queue full (%d messages), dropped its oldest (%d dropped so far)",
                    self.client_id,
                    self.max_queued,
                    self.dropped,
                )
        self.pending.append(msg)
        self.wake.set()

    def next_packet_id(self) -> int:
        while True:
            self._last_id = self._last_id % 65535 + 1
            if self._last_id not in self.inflight:
                return self._last_id


class _Connection:
    """One client socket: reads and answers its packets; a sender task delivers its queue."""

    def __init__(
        self, broker: EmbeddedBroker, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.broker, self.reader, self.writer = broker, reader, writer
        self.peer = writer.get_extra_info("peername")
        self.session: _Session | None = None
        self.will: Message | None = None
        self.keepalive, self.closing = 0, False
        self.task = asyncio.current_task()
        self.sender: asyncio.Task[None] | None = None

    def __str__(self) -> str:
        name = self.session.client_id if self.session else "?"
        return f"client {name!r} at {self.peer}"

    async def serve(self) -> None:
        """Run the connection to its end; only this connection is affected by what goes wrong."""
        try:
            if not await self._connect():
                return
            timeout = self.keepalive * 1.5 if self.keepalive else None
            while True:
                try:
                    async with asyncio.timeout(timeout):
                        ptype, flags, body = await _read_packet(self.reader)
                except TimeoutError:
                    logger.info("%s: nothing received for 1.5 x keepalive, closing", self)
                    return
                if self.closing:
                    return
                if ptype == DISCONNECT:  # flags were checked by _read_packet
                    logger.info("%s disconnected", self)
                    self.will = None
                    return
                self._handle(ptype, flags, body)
                await self.writer.drain()
        except ProtocolError as exc:
            logger.warning("%s: malformed or forbidden packet, closing: %s", self, exc)
        except TimeoutError:
            logger.warning("%s: no CONNECT within %.0f s, closing", self, CONNECT_TIMEOUT_S)
        except (asyncio.IncompleteReadError, OSError) as exc:
            level = logging.DEBUG if self.closing else logging.INFO
            logger.log(level, "%s: connection lost without DISCONNECT (%r)", self, exc)
        except Exception:
            logger.exception("%s: internal error, closing this connection", self)
        finally:
            await self._finish()

    async def _connect(self) -> bool:
        async with asyncio.timeout(CONNECT_TIMEOUT_S):
            _, _, body = await _read_packet(self.reader, first_packet=True)
        f = _Fields(body)
        name, level = f.text(), f.u8()
        if (name, level) not in (("MQTT", 4), ("MQIsdp", 3)):
            if name in ("MQTT", "MQIsdp"):
                self.writer.write(_packet(CONNACK << 4, b"\x00\x01"))
            raise ProtocolError(f"unsupported protocol {name!r} level {level}")
        flags = f.u8()
        if flags & 0x01:
            raise ProtocolError("reserved CONNECT flag set")
        clean, self.keepalive, client_id = bool(flags & 0x02), f.u16(), f.text()
        will = None
        if flags & 0x04:
            topic, payload, qos = f.text(), f.binary(), (flags >> 3) & 3
            if qos == 3 or not valid_topic_name(topic):
                raise ProtocolError(f"invalid will (topic {topic!r}, QoS {qos})")
            will = Message(topic, payload, min(qos, 1), bool(flags & 0x20))
        elif flags & 0x38:
            raise ProtocolError("will QoS or retain set without a will")
        username = f.text() if flags & 0x80 else None
        password = f.binary() if flags & 0x40 else None
        code = self.broker._refusal(client_id, clean, username, password)
        if code:
            self.writer.write(_packet(CONNACK << 4, bytes([0, code])))
            logger.warning("refused %r from %s: CONNACK code %d", client_id, self.peer, code)
            return False
        client_id = client_id or f"auto-{secrets.token_hex(8)}"
        present = self.broker._attach(self, client_id, clean)
        self.will = will
        self.writer.write(_packet(CONNACK << 4, bytes([int(present), 0])))
        session = self.session
        assert session is not None
        for packet_id, msg in session.inflight.items():
            self.writer.write(_publish_packet(msg, packet_id, dup=True))
        self.sender = asyncio.create_task(self._send_loop(session), name=f"mqtt-send-{client_id}")
        info = f"clean session {clean}, keepalive {self.keepalive} s, session present {present}"
        logger.info("%s connected (%s)", self, info)
        return True

    def _handle(self, ptype: int, flags: int, body: bytes) -> None:
        session = self.session
        assert session is not None
        if ptype == PUBLISH:
            self._on_publish(session, flags, body)
        elif ptype == PUBACK:
            if session.inflight.pop(_Fields(body).u16(), None) is not None:
                session.wake.set()
        elif ptype == PUBREL:
            packet_id = _Fields(body).u16()
            session.qos2_ids.discard(packet_id)
            self.writer.write(_packet(PUBCOMP << 4, struct.pack("!H", packet_id)))
        elif ptype == SUBSCRIBE:
            self._on_subscribe(session, _Fields(body))
        elif ptype == UNSUBSCRIBE:
            f = _Fields(body)
            packet_id = f.u16()
            if f.exhausted:
                raise ProtocolError("UNSUBSCRIBE without topic filters")
            while not f.exhausted:
                session.subscriptions.pop(f.text(), None)
            self.writer.write(_packet(UNSUBACK << 4, struct.pack("!H", packet_id)))
        elif ptype == PINGREQ:
            self.writer.write(_packet(PINGRESP << 4))
        elif ptype in (PUBREC, PUBCOMP):
            logger.debug("%s: ignoring packet type %d: nothing is sent at QoS 2", self, ptype)
        else:
            raise ProtocolError(f"unexpected packet type {ptype}")

    def _on_publish(self, session: _Session, flags: int, body: bytes) -> None:
        qos = (flags >> 1) & 3
        f = _Fields(body)
        topic = f.text()
        packet_id = f.u16() if qos else 0
        if qos == 3 or not valid_topic_name(topic) or (qos and not packet_id):
            raise ProtocolError(f"invalid PUBLISH (topic {topic!r}, QoS {qos}, id {packet_id})")
        msg = Message(topic, f.rest(), min(qos, 1), bool(flags & 0x01))
        if qos == 2:
            if packet_id not in session.qos2_ids:
                session.qos2_ids.add(packet_id)
                self.broker._route(msg)
            self.writer.write(_packet(PUBREC << 4, struct.pack("!H", packet_id)))
            return
        self.broker._route(msg)
        if qos == 1:
            self.writer.write(_packet(PUBACK << 4, struct.pack("!H", packet_id)))

    def _on_subscribe(self, session: _Session, f: _Fields) -> None:
        packet_id, codes, granted = f.u16(), bytearray(), []
        while not f.exhausted:
            topic_filter, requested = f.text(), f.u8()
            if requested > 2:
                raise ProtocolError(f"SUBSCRIBE with requested QoS byte {requested:#x}")
            if not valid_topic_filter(topic_filter):
                codes.append(0x80)
                continue
            qos = min(requested, 1)
            session.subscriptions[topic_filter] = qos
            codes.append(qos)
            granted.append((topic_filter, qos))
        if not codes:
            raise ProtocolError("SUBSCRIBE without topic filters")
        self.writer.write(_packet(SUBACK << 4, struct.pack("!H", packet_id) + bytes(codes)))
        for topic_filter, qos in granted:
            for msg in self.broker._retained.values():
                if topic_matches(topic_filter, msg.topic):
                    session.enqueue(Message(msg.topic, msg.payload, min(msg.qos, qos), True))

    async def _send_loop(self, session: _Session) -> None:
        """Write queued messages in order, at most MAX_INFLIGHT unacknowledged QoS 1 ones."""
        try:
            while True:
                session.wake.clear()
                while session.pending and len(session.inflight) < MAX_INFLIGHT:
                    msg = session.pending.popleft()
                    packet_id = session.next_packet_id() if msg.qos else 0
                    if msg.qos:
                        session.inflight[packet_id] = msg
                    self.writer.write(_publish_packet(msg, packet_id, dup=False))
                await self.writer.drain()
                if not session.pending or len(session.inflight) >= MAX_INFLIGHT:
                    await session.wake.wait()
        except OSError as exc:
            logger.debug("%s: sending stopped (%r)", self, exc)

    def abort(self, reason: str) -> None:
        """Drop this connection now, without its will (client-id takeover, broker stop)."""
        logger.info("%s: closing, %s", self, reason)
        self.will, self.closing = None, True
        if self.sender is not None:  # at once: it must not take the next client's messages
            self.sender.cancel()
        if self.session is not None and self.session.conn is self:
            self.session.conn = None
        self.writer.transport.abort()  # serve() then reads EOF and finishes

    async def _finish(self) -> None:
        if self.sender is not None:
            self.sender.cancel()
        self.writer.close()
        session = self.session
        if session is not None and session.conn is self:
            session.conn = None
            if session.clean and self.broker._sessions.get(session.client_id) is session:
                del self.broker._sessions[session.client_id]
        will, self.will = self.will, None
        if will is not None:
            logger.info("%s: publishing its last will on %r", self, will.topic)
            self.broker._route(will)
        self.broker._connections.discard(self)
        if self.sender is not None:
            await asyncio.gather(self.sender, return_exceptions=True)
        try:
            async with asyncio.timeout(1.0):
                await self.writer.wait_closed()
        except (TimeoutError, OSError) as exc:
            logger.debug("%s: socket closed abruptly (%r)", self, exc)
            self.writer.transport.abort()


class EmbeddedBroker:
    """An in-process MQTT 3.1.1 broker; ``async with EmbeddedBroker(port=0) as broker:``.

    ``host``/``port`` are where :meth:`start` listens by default (port 0 picks a free one,
    then ``.port`` is the real one). With ``username`` set, clients must present it and
    ``password``; ``max_queued`` bounds each client's queue of undelivered messages.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 1883,
        *,
        username: str | None = None,
        password: str | None = None,
        max_queued: int = 10_000,
    ) -> None:
        self.host, self.port = host, port
        self.username, self.password, self.max_queued = username, password, max_queued
        self._server: asyncio.Server | None = None
        self._sessions: dict[str, _Session] = {}
        self._retained: dict[str, Message] = {}
        self._connections: set[_Connection] = set()

    async def start(self, host: str | None = None, port: int | None = None) -> None:
        """Listen on ``host:port`` (default: the constructor's); a busy port raises clearly."""
        if self._server is not None:
            raise RuntimeError("the embedded MQTT broker is already started")
        host = self.host if host is None else host
        port = self.port if port is None else port
        try:
            self._server = await asyncio.start_server(self._on_client, host, port)
        except OSError as exc:
            raise NeuroclipError(
                f"the embedded MQTT broker cannot listen on {host}:{port}: {exc.strerror or exc}",
                fix=f"another program holds port {port}: if it is an MQTT broker such as "
                "Mosquitto, use it instead of the embedded one; otherwise stop it or choose "
                "another port (0 picks a free one).",
            ) from exc
        self.host, self.port = host, self._server.sockets[0].getsockname()[1]
        logger.info("embedded MQTT broker listening on %s:%d", self.host, self.port)

    async def stop(self) -> None:
        """Close every connection (no wills) and stop listening; all state is forgotten."""
        if self._server is None:
            return
        self._server.close()
        tasks = [c.task for c in self._connections if c.task is not None]
        for conn in list(self._connections):
            conn.abort("the broker stops")
        await asyncio.gather(*tasks, return_exceptions=True)
        await self._server.wait_closed()
        self._server = None
        self._sessions.clear()
        self._retained.clear()
        logger.info("embedded MQTT broker on %s:%d stopped", self.host, self.port)

    async def __aenter__(self) -> EmbeddedBroker:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def _on_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        if sock is not None:  # small messages must not wait for Nagle's algorithm
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn = _Connection(self, reader, writer)
        self._connections.add(conn)
        await conn.serve()

    def _refusal(
        self, client_id: str, clean: bool, username: str | None, password: bytes | None
    ) -> int:
        """The CONNACK return code refusing this CONNECT, or 0 to accept it."""
        if not client_id and not clean:
            return 2  # identifier rejected: a persistent session needs a client id
        if self.username is None:
            return 0
        if username is None:
            return 5
        good_user = hmac.compare_digest(username.encode(), self.username.encode())
        good_password = hmac.compare_digest(password or b"", (self.password or "").encode())
        return 0 if good_user and good_password else 4

    def _attach(self, conn: _Connection, client_id: str, clean: bool) -> bool:
        """Give ``conn`` its session (taking over a live one); returns 'session present'."""
        session = self._sessions.get(client_id)
        if session is not None and session.conn is not None:
            session.conn.abort("its client id connected again")
        present = not clean and session is not None and not session.clean
        if not present:
            session = _Session(client_id, clean, self.max_queued)
            self._sessions[client_id] = session
        assert session is not None
        session.conn, conn.session = conn, session
        return present

    def _route(self, msg: Message) -> None:
        """Store a retained message and queue ``msg`` for every matching session, in order."""
        if msg.retain:
            if msg.payload:
                self._retained[msg.topic] = msg
            else:
                self._retained.pop(msg.topic, None)
        for session in self._sessions.values():
            granted = session.granted_qos(msg.topic)
            if granted is not None:
                session.enqueue(Message(msg.topic, msg.payload, min(msg.qos, granted)))


def run_broker(host: str = "127.0.0.1", port: int = 1883) -> None:
    """Serve until Ctrl-C or SIGTERM (``python -m neuroclip.embedded_broker --port N``)."""

    async def serve() -> None:
        stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(sig, stopping.set)
            except (NotImplementedError, RuntimeError) as exc:  # Windows, or not main thread
                logger.debug("no handler for %s (%s): Ctrl-C still stops the broker", sig, exc)
        async with EmbeddedBroker(host, port):
            await stopping.wait()

    try:
        asyncio.run(serve())
    except KeyboardInterrupt:
        logger.info("embedded MQTT broker interrupted")


def main(argv: list[str] | None = None) -> None:
    """Command line of ``python -m neuroclip.embedded_broker``."""
    parser = argparse.ArgumentParser(
        prog="python -m neuroclip.embedded_broker",
        description="A small MQTT 3.1.1 broker for demos (use Mosquitto in production).",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=1883, help="port (0 picks a free one)")
    parser.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING...")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        run_broker(args.host, args.port)
    except NeuroclipError as exc:
        logger.error("%s", exc)
        raise SystemExit(exc.exit_code) from None


if __name__ == "__main__":
    main()
