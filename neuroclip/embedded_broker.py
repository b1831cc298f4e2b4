"""The demo's MQTT broker where Mosquitto is absent: amqtt, on loopback, anonymous.

`amqtt <https://github.com/Yakifo/amqtt>`_ is a maintained asyncio MQTT 3.1.1 broker (QoS 0,
1 and 2, retained messages, last wills, persistent sessions, TLS and auth plugins). The demo
runs it as a child process, ``python -m neuroclip.embedded_broker --port N``, so the monitor
(aiomqtt) and the dashboard (paho-mqtt) meet on this machine with nothing but Python
packages installed. It listens on 127.0.0.1 only and takes anyone who connects there: it is
for a demo on one machine. Production sites run Mosquitto (docs/deploy.md).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal

from contract.errors import NeuroclipError

logger = logging.getLogger(__name__)


def broker_config(host: str, port: int) -> dict:
    """amqtt's configuration: one TCP listener, anonymous clients, no ``$SYS`` topics."""
    return {
        "listeners": {"default": {"type": "tcp", "bind": f"{host}:{port}"}},
        "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
    }


async def serve(host: str, port: int, stopping: asyncio.Event) -> None:
    """Run the broker until ``stopping`` is set."""
    from amqtt.broker import Broker

    broker = Broker(broker_config(host, port))
    try:
        await broker.start()
    except OSError as exc:
        raise NeuroclipError(
            f"The demo's MQTT broker cannot listen on {host}:{port}: {exc.strerror or exc}.",
            fix="choose another port, or stop what is using this one.",
        ) from None
    logger.info("amqtt MQTT broker listening on %s:%d", host, port)
    try:
        await stopping.wait()
    finally:
        await broker.shutdown()


def run_broker(host: str = "127.0.0.1", port: int = 1883) -> None:
    """Serve until Ctrl-C or SIGTERM."""

    async def main() -> None:
        stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stopping.set)
        await serve(host, port, stopping)

    asyncio.run(main())


def main(argv: list[str] | None = None) -> None:
    """Command line of ``python -m neuroclip.embedded_broker``."""
    parser = argparse.ArgumentParser(
        prog="python -m neuroclip.embedded_broker",
        description="amqtt on loopback for the demo (use Mosquitto in production).",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=1883, help="port")
    parser.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING...")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    # amqtt logs every connection at INFO; the demo's log keeps our lines readable
    logging.getLogger("amqtt").setLevel(max(logging.WARNING, logging.getLogger().level))
    try:
        run_broker(args.host, args.port)
    except NeuroclipError as exc:
        logger.error("%s", exc)
        raise SystemExit(exc.exit_code) from None


if __name__ == "__main__":
    main()
