"""``neuroclip demo``: the whole system on one machine, from one command.

It starts, as child processes, a broker (Mosquitto when installed, otherwise the embedded
Python broker), a synthetic patient's LSL outlets, the monitor with the default model and
the dashboard; prints the URL; and stops them all on Ctrl-C, SIGTERM or ``--duration``.
Every child is stopped (SIGTERM, then SIGKILL after a grace period) and waited for, and on
Linux each child is also told to exit if this process dies, so none is left behind.
If a child exits early, the demo stops the others and shows the end of its output.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from contract.errors import NeuroclipError

_GRACE_S = 10.0
_STARTUP_S = 30.0
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # runs in the child between fork and exec
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def port_free(port: int, host: str = "127.0.0.1") -> bool:
    """Whether nothing listens on ``host:port``."""
    with socket.socket() as s:
        return s.connect_ex((host, port)) != 0


def free_port() -> int:
    """A port nobody listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, proc: subprocess.Popen, what: str, timeout_s: float) -> None:
    """Wait until ``proc`` listens on ``port``; a clear error if it exits or takes too long."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise NeuroclipError(
                f"The demo's {what} exited at start (status {proc.returncode}).",
                fix="read its output above; run the command it names on its own to see more.",
            )
        if not port_free(port):
            return
        time.sleep(0.1)
    raise NeuroclipError(
        f"The demo's {what} did not listen on port {port} within {timeout_s:g} s.",
        fix="check that nothing blocks local connections, then try again.",
    )


@dataclass
class Child:
    """One process of the demo and where its output goes."""

    name: str
    proc: subprocess.Popen
    log: Path

    def tail(self, lines: int = 15) -> str:
        """The end of its output."""
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


class Demo:
    """Start and stop the demo's processes; see the module docstring."""

    def __init__(self, work: Path, *, embedded_broker: bool = False):
        self.work = work
        self.embedded_broker = embedded_broker
        self.children: list[Child] = []

    def spawn(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> Child:
        """Start one child with its output in ``work/<name>.log`` (``env`` added to ours)."""
        log = self.work / f"{name}.log"
        with log.open("w") as handle:
            proc = subprocess.Popen(
                argv,
                env={**os.environ, **(env or {})},
                stdout=handle,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                preexec_fn=_die_with_parent,
            )
        child = Child(name, proc, log)
        self.children.append(child)
        return child

    def start_broker(self, port: int) -> str:
        """Mosquitto on ``port`` when installed (unless told otherwise), else amqtt."""
        mosquitto = shutil.which("mosquitto") or (
            "/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None
        )
        if mosquitto and not self.embedded_broker:
            conf = self.work / "mosquitto.conf"
            conf.write_text(
                f"listener {port} 127.0.0.1\nallow_anonymous true\nset_tcp_nodelay true\n"
            )
            child = self.spawn("mosquitto", [mosquitto, "-c", str(conf)])
            kind = "Mosquitto"
        else:
            argv = [sys.executable, "-m", "neuroclip.embedded_broker", "--port", str(port)]
            child = self.spawn("broker", argv)
            kind = "the embedded amqtt broker"
        wait_for_port(port, child.proc, kind, _STARTUP_S)
        return kind

    def check(self) -> None:
        """Raise if a child has exited (the demo cannot go on without it)."""
        for child in self.children:
            if child.proc.poll() is not None:
                raise NeuroclipError(
                    f"The demo's {child.name} exited (status {child.proc.returncode}); its last "
                    f"lines:\n{child.tail()}",
                    fix=f"see the whole output in {child.log}.",
                )

    def stop(self) -> None:
        """SIGTERM every child, newest first; SIGKILL what is still there after the grace."""
        for child in reversed(self.children):
            if child.proc.poll() is None:
                child.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + _GRACE_S
        for child in reversed(self.children):
            try:
                child.proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.proc.kill()
                child.proc.wait(5)


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "neuroclip", *args]


def run_demo(args: argparse.Namespace) -> int:
    """Handler of ``neuroclip demo``."""
    broker_port = args.broker_port if port_free(args.broker_port) else free_port()
    http_port = args.port if port_free(args.port) else free_port()
    prefix = f"NeuroCLIP-Demo-{int(time.time()) % 100000}"
    work = Path(tempfile.mkdtemp(prefix="neuroclip-demo-"))
    demo = Demo(work, embedded_broker=args.embedded_broker)
    stop_requested = False

    def on_sigterm(signum: int, frame: object) -> None:
        nonlocal stop_requested
        stop_requested = True

    previous = signal.signal(signal.SIGTERM, on_sigterm)
    try:
        kind = demo.start_broker(broker_port)
        broker = f"mqtt://127.0.0.1:{broker_port}"
        demo.spawn(
            "patient",
            _cli("simulate", "--live", "--duration", "86400", "--name-prefix", prefix),
        )
        streams = {
            f"NEUROCLIP_MONITOR__STREAMS__{role.upper()}__NAME": f"{prefix}-{suffix}"
            for role, suffix in (("eeg", "EEG"), ("nirs", "NIRS"), ("markers", "Markers"))
        }
        demo.spawn(
            "monitor",
            _cli(
                "monitor",
                "--broker",
                broker,
                "--site",
                args.site,
                "--session",
                args.session,
                "--log-dir",
                str(args.log_dir),
            ),
            env=streams,
        )
        dashboard = demo.spawn(
            "dashboard", _cli("dashboard", "--broker", broker, "--port", str(http_port))
        )
        wait_for_port(http_port, dashboard.proc, "dashboard", _STARTUP_S)
        url = f"http://127.0.0.1:{http_port}/?session={args.site}/{args.session}"
        print(
            f"NeuroCLIP demo: a synthetic patient ({prefix}-EEG/-NIRS/-Markers), the monitor "
            f"(session {args.site}/{args.session}, log in {args.log_dir}), {kind} on "
            f"{broker}.\nDashboard: {url}\nCtrl-C stops everything. Research software, not a "
            f"medical device. Process output: {work}",
            flush=True,
        )
        started = time.monotonic()
        while not stop_requested:
            demo.check()
            if args.duration is not None and time.monotonic() - started >= args.duration:
                break
            time.sleep(0.2)
    except KeyboardInterrupt:
        print("stopping the demo", flush=True)
    finally:
        demo.stop()
        signal.signal(signal.SIGTERM, previous)
    print("demo stopped; no process left running", flush=True)
    return 0
