"""``neuroclip demo``: the whole system on one machine, from one command.

It starts, as child processes, a broker (Mosquitto when installed, otherwise the embedded
Python broker) and the dashboard, then runs two sessions of one synthetic patient, one after
the other: ``P001-pre`` and ``P001-post`` (the same subject after its rTMS course), each a
patient's LSL outlets and a monitor with the default model. By default the patient follows
the compressed protocol (:data:`models.simulation.config.COMPRESSED_PROTOCOL`), so a
4-minute session shows every phase: resting baseline, drug and neutral cues, rTMS trains
(whose windows the gate marks unusable), inter-train, post; and after the second session
the dashboard's summary compares pre with post (it pairs ``<stem>-pre`` with
``<stem>-post``). It prints its progress as it goes (broker, dashboard, streams, monitor,
first score) and then a status line every ``--status-every`` seconds, read from the
monitor's session log: phase, cue, windows, why windows were unusable, the last score.

When both sessions are done the broker and the dashboard stay up until Ctrl-C, SIGTERM or
``--duration``. Every child is stopped (SIGTERM, then SIGKILL after a grace period) and
waited for, and on Linux each child is also told to exit if this process dies, so none is
left behind. If a child exits early, the demo stops the others and shows the end of its
output.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import glob
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path

from contract.errors import NeuroclipError

_GRACE_S = 10.0
_STARTUP_S = 30.0
_CHILD_STARTUP_S = 90.0
"""How long a patient or a monitor may take to come up (imports on a busy machine)."""
_TAIL_S = 5.0
"""After the patient's last sample, time for the monitor to score the last windows (its
``max_wait_s`` is 3 s) before it is stopped."""
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
        return "\n".join(self.output().splitlines()[-lines:])

    def output(self) -> str:
        """Its output so far."""
        return self.log.read_text(errors="replace") if self.log.exists() else ""


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

    def retire(self, child: Child, signum: int = signal.SIGINT) -> int:
        """Stop one child (``signum``, SIGKILL after the grace) and forget it; its status."""
        if child.proc.poll() is None:
            child.proc.send_signal(signum)
            try:
                child.proc.wait(_GRACE_S)
            except subprocess.TimeoutExpired:
                child.proc.kill()
                child.proc.wait(5)
        self.children.remove(child)
        return child.proc.returncode

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


_PRE = re.compile(r"^(?P<stem>.+?[-_.](?:ses-)?)(?P<stage>pre)$", re.IGNORECASE)
_POST = re.compile(r"^.+?[-_.](?:ses-)?post$", re.IGNORECASE)


def session_ids(session: str) -> tuple[str, str]:
    """The demo's pre and post session ids from ``--session``.

    The dashboard pairs sessions by name only (``dashboard.summary``: ``<stem>-pre`` with
    ``<stem>-post``, ``-``, ``_`` or ``.`` as separator, ``ses-`` allowed), so the post id
    is the pre id with ``post`` for ``pre``; an id without the suffix is taken as the stem.
    """
    match = _PRE.match(session)
    if match:
        post = "POST" if match.group("stage").isupper() else "post"
        return session, match.group("stem") + post
    if _POST.match(session):
        raise NeuroclipError(
            f"--session {session} names a post-treatment session; the demo needs the first one.",
            fix="give the pre session (e.g. --session P001-pre) or a stem (--session P001); "
            "the demo runs <stem>-pre, then <stem>-post.",
        )
    return f"{session}-pre", f"{session}-post"


def protocol_env(protocol: str, environ: Mapping[str, str]) -> dict[str, str]:
    """Environment for the patient: the compressed protocol's timings, each one unless the
    user's environment sets it (``NEUROCLIP_SIMULATE__PROTOCOL__<KEY>`` wins); nothing for
    the standard protocol (the simulator's defaults)."""
    if protocol != "compressed":
        return {}
    from models.simulation.config import COMPRESSED_PROTOCOL

    env = {}
    for f in fields(COMPRESSED_PROTOCOL):
        var = f"NEUROCLIP_SIMULATE__PROTOCOL__{f.name.upper()}"
        value = getattr(COMPRESSED_PROTOCOL, f.name)
        if var not in environ and value is not None:
            env[var] = str(value)
    return env


@dataclass(frozen=True)
class Plan:
    """What the demo will stream and when the monitor will score it."""

    sessions: tuple[str, str]
    session_s: float
    protocol: str
    env: dict[str, str]
    """Environment of the patient processes (the protocol's timings)."""
    baseline_s: float
    """Resting baseline: the first cue or train comes then."""
    trains: tuple[float, ...]
    """Onsets of the rTMS trains."""
    post_s: float | None
    """When the first cue after the last train starts (the ``post`` phase), if one does."""
    first_score_s: float | None
    """The monitor's warm-up plus one window: when its first window ends (None: unknown)."""

    def describe(self) -> str:
        """The session's plan in one sentence."""
        text = f"resting baseline to {self.baseline_s:g} s"
        if len(self.trains) == 1:
            text += f", drug and neutral cues, one rTMS train at {self.trains[0]:g} s"
        elif self.trains:
            text += (
                f", drug and neutral cues, {len(self.trains)} rTMS trains from "
                f"{self.trains[0]:g} s to {self.trains[-1]:g} s"
            )
        if self.post_s is not None:
            text += f", post cues from {self.post_s:g} s"
        return text + f", end at {self.session_s:g} s"

    def warning(self) -> str | None:
        """A note when the monitor's first window ends after the resting baseline."""
        if self.first_score_s is None or self.first_score_s < self.baseline_s:
            return None
        return (
            f"note: the monitor's first window ends at {self.first_score_s:g} s (warm-up plus "
            f"one window), after the {self.baseline_s:g} s resting baseline: no resting "
            "window is scored (the cues before the trains still count as baseline)"
        )


def make_plan(
    session: str,
    session_s: float | None,
    protocol: str,
    environ: Mapping[str, str] | None = None,
) -> Plan:
    """The demo's plan from its flags and the environment (which both children read)."""
    import numpy as np

    from contract.settings import load_config
    from models.simulation.config import COMPRESSED_SESSION_S, SimulationConfig
    from models.simulation.protocol import build_timeline

    environ = os.environ if environ is None else environ
    env = protocol_env(protocol, environ)
    cfg = load_config(SimulationConfig, None, name="simulate", environ={**environ, **env})
    if session_s is None:
        session_s = COMPRESSED_SESSION_S if protocol == "compressed" else cfg.live.duration_s
    if not session_s > 0:
        raise NeuroclipError(
            f"--session-s must be a positive number of seconds, got {session_s:g}.",
            fix=f"give e.g. --session-s {COMPRESSED_SESSION_S:g}, or leave it out.",
        )
    # the cue order is random; the times are not
    events = build_timeline(session_s, cfg.protocol, np.random.default_rng(0), with_rtms=True)
    trains = tuple(e.onset for e in events if e.label == "rtms/train_start")
    first = next((e.onset for e in events if e.label.startswith(("cue/", "rtms/"))), session_s)
    post = [
        e.onset for e in events if e.label.startswith("cue/") and trains and e.onset > trains[-1]
    ]
    return Plan(
        session_ids(session),
        float(session_s),
        protocol,
        env,
        first,
        trains,
        post[0] if post else None,
        _first_score_s(environ),
    )


def _first_score_s(environ: Mapping[str, str]) -> float | None:
    """When the monitor's first window ends: its warm-up (configured or the bundle's) plus
    the bundle's window."""
    try:
        from contract.settings import load_config
        from models.bundle import DEFAULT_BUNDLE, load_bundle
        from streamer.config import MonitorConfig

        cfg = load_config(MonitorConfig, None, name="monitor", environ=environ)
        windows = load_bundle(cfg.model.bundle or DEFAULT_BUNDLE).signal_params.windows
        warmup = cfg.windows.warmup_s if cfg.windows.warmup_s is not None else windows.warmup_s
        return float(warmup + windows.window_s)
    except Exception:  # the monitor reports its own configuration errors
        return None


@dataclass
class SessionWatch:
    """What the monitor wrote to one session's log so far (the record of truth).

    The log is ``<log_dir>/<site>/<session>_<UTC start>.scores.jsonl``, one score message a
    line; the newest such file written since ``since`` (wall clock) is followed.
    """

    folder: Path
    session: str
    since: float
    path: Path | None = None
    offset: int = 0
    windows: int = 0
    usable: int = 0
    reasons: Counter = field(default_factory=Counter)
    phase: str | None = None
    cue: str | None = None
    score: float | None = None
    smoothed: float | None = None
    per_phase: dict[str, list[float]] = field(default_factory=dict)
    phases: list[str] = field(default_factory=list)
    """Phases in the order their first window came."""

    def poll(self) -> list[str]:
        """Read the lines written since the last call; the phases they began."""
        known = len(self.phases)
        self._read()
        return self.phases[known:]

    def _read(self) -> None:
        """Read the lines written since the last call."""
        if self.path is None:
            pattern = str(self.folder / f"{glob.escape(self.session)}_*.scores.jsonl")
            found = [Path(f) for f in glob.glob(pattern)]
            found = [f for f in found if f.stat().st_mtime >= self.since - 1.0]
            if not found:
                return
            self.path = max(found, key=lambda f: f.stat().st_mtime)
        try:
            with self.path.open("rb") as handle:
                handle.seek(self.offset)
                data = handle.read()
        except OSError:
            return
        complete = data[: data.rfind(b"\n") + 1]
        self.offset += len(complete)
        for line in complete.splitlines():
            with contextlib.suppress(ValueError):
                self._add(json.loads(line))

    def _add(self, message: dict) -> None:
        self.windows += 1
        self.phase, self.cue = message.get("phase"), message.get("cue")
        if self.phase is not None and self.phase not in self.phases:
            self.phases.append(self.phase)
        if message.get("usable") and message.get("score") is not None:
            self.usable += 1
            self.score, self.smoothed = message["score"], message.get("smoothed")
            self.per_phase.setdefault(self.phase or "unknown", []).append(message["score"])
        else:
            self.reasons.update((message.get("quality") or {}).get("reasons") or ["unusable"])

    def mean(self, phase: str) -> float | None:
        """Mean usable score in ``phase``."""
        scores = self.per_phase.get(phase)
        return sum(scores) / len(scores) if scores else None

    def counts(self) -> str:
        """Windows, scored and unusable with the reasons."""
        text = f"{self.windows} windows, {self.usable} scored"
        unusable = self.windows - self.usable
        if unusable:
            why = ", ".join(f"{r} {n}" for r, n in self.reasons.most_common(3))
            text += f", {unusable} unusable ({why})"
        return text

    def status(self) -> str:
        """Phase, cue, counts and the last score."""
        if not self.windows:
            return "no window yet (warm-up)"
        text = f"phase {self.phase} | cue {self.cue or '-'} | {self.counts()}"
        if self.score is not None:
            text += f" | last score {self.score:.2f}"
            if self.smoothed is not None:
                text += f", smoothed {self.smoothed:.2f}"
        return text

    def means(self) -> str:
        """Mean usable score per phase, in the order of a session."""
        order = ("baseline", "rtms_train", "inter_train", "post", "unknown")
        parts = [f"{p} {self.mean(p):.2f}" for p in order if self.mean(p) is not None]
        return "mean score " + ", ".join(parts) if parts else "no usable window"


PHASE_NEWS = {
    "baseline": "phase baseline (before the first rTMS train)",
    "rtms_train": "phase rtms_train: windows that overlap a train are not scored (the pulses "
    "and their EEG artefact)",
    "inter_train": "phase inter_train (between trains)",
    "post": "phase post (cues after the last train)",
}
"""What the demo says when a session's windows reach a phase for the first time."""


class _StopDemoError(Exception):
    """SIGTERM or ``--duration`` ended the demo."""


def _clock(seconds: float) -> str:
    seconds = max(0, int(seconds))
    return f"{seconds // 60:02d}:{seconds % 60:02d}"


class _Run:
    """The demo's timeline: start-up, the two sessions, then waiting for the end."""

    def __init__(self, args: argparse.Namespace, demo: Demo, plan: Plan):
        self.args, self.demo, self.plan = args, demo, plan
        self.started = time.monotonic()
        self.stop_requested = False
        self.prefix = f"NeuroCLIP-Demo-{int(time.time()) % 100000}"

    def say(self, text: str) -> None:
        print(f"[{_clock(time.monotonic() - self.started)}] {text}", flush=True)

    def tick(self, expected_exit: Child | None = None) -> None:
        """Raise when the demo must end or a child it needs has exited; wait a moment."""
        if self.stop_requested:
            raise _StopDemoError("stopped by SIGTERM")
        duration = self.args.duration
        if duration is not None and time.monotonic() - self.started >= duration:
            raise _StopDemoError(f"--duration {duration:g} s reached")
        for child in self.demo.children:
            if child is not expected_exit and child.proc.poll() is not None:
                self.demo.check()
        time.sleep(0.2)

    def wait_for_line(self, child: Child, text: str, what: str) -> None:
        """Wait until ``child`` has printed ``text``."""
        deadline = time.monotonic() + _CHILD_STARTUP_S
        while text not in child.output():
            if time.monotonic() > deadline:
                raise NeuroclipError(
                    f"The demo's {what} did not come up within {_CHILD_STARTUP_S:g} s; its "
                    f"last lines:\n{child.tail()}",
                    fix=f"see the whole output in {child.log}.",
                )
            self.tick()

    def start_services(self, broker_port: int, http_port: int) -> str:
        """The broker, then the dashboard; the broker's URL."""
        kind = self.demo.start_broker(broker_port)
        broker = f"mqtt://127.0.0.1:{broker_port}"
        self.say(f"broker up: {kind} on {broker}")
        dashboard = self.demo.spawn(
            "dashboard",
            _cli(
                "dashboard",
                "--broker",
                broker,
                "--port",
                str(http_port),
                "--sessions-dir",
                str(self.args.log_dir),
            ),
        )
        wait_for_port(http_port, dashboard.proc, "dashboard", _STARTUP_S)
        self.say(f"dashboard up on http://127.0.0.1:{http_port}/")
        return broker

    def session(self, index: int, broker: str, http_port: int) -> SessionWatch:
        """Stream one session to its end and stop its monitor; what its log holds."""
        args, plan = self.args, self.plan
        session = plan.sessions[index]
        stage = ("pre", "post")[index]
        name = f"session {index + 1}/2 {session}"
        prefix = f"{self.prefix}-{stage}"
        patient = self.demo.spawn(
            f"patient-{stage}",
            _cli(
                "simulate",
                "--live",
                "--stage",
                stage,
                "--duration",
                f"{plan.session_s:g}",
                "--name-prefix",
                prefix,
                "--wait-consumers",
                f"{_CHILD_STARTUP_S:g}",
            ),
            env=plan.env,
        )
        self.wait_for_line(patient, "outlets up", f"patient ({stage})")
        self.say(f"{name}: streams up ({prefix}-EEG, -NIRS, -Markers)")
        streams = {
            f"NEUROCLIP_MONITOR__STREAMS__{role.upper()}__NAME": f"{prefix}-{suffix}"
            for role, suffix in (("eeg", "EEG"), ("nirs", "NIRS"), ("markers", "Markers"))
        }
        watch = SessionWatch(args.log_dir / args.site, session, time.time())
        monitor = self.demo.spawn(
            f"monitor-{stage}",
            _cli(
                "monitor",
                "--broker",
                broker,
                "--site",
                args.site,
                "--session",
                session,
                "--log-dir",
                str(args.log_dir),
            ),
            env=streams,
        )
        self.wait_for_line(patient, "streaming ", f"monitor ({session})")
        streaming = time.monotonic()
        first = (
            f"; first score about {plan.first_score_s:g} s in (warm-up and one window)"
            if plan.first_score_s is not None
            else ""
        )
        self.say(
            f"{name}: monitor up and reading the streams; the session has started{first}; "
            f"scores go to {broker} and {args.log_dir / args.site}"
        )
        print(f"Dashboard: http://127.0.0.1:{http_port}/?session={args.site}/{session}", flush=True)
        every = args.status_every
        next_status = streaming + every
        while patient.proc.poll() is None:
            self.tick(expected_exit=patient)
            seen = watch.windows
            news = [PHASE_NEWS.get(phase, f"phase {phase}") for phase in watch.poll()]
            if not seen and watch.windows:
                news[:1] = [f"first window scored; {n}" for n in news[:1]] or [
                    "first window scored"
                ]
            for text in news:
                self.say(f"{session}: {text}")
            if every > 0 and time.monotonic() >= next_status:
                next_status += every
                elapsed = _clock(time.monotonic() - streaming)
                self.say(f"{session} {elapsed}/{_clock(plan.session_s)} | {watch.status()}")
        if patient.proc.returncode != 0:
            self.demo.check()  # raises, with the patient's output
        self.demo.retire(patient)
        tail_end = time.monotonic() + _TAIL_S
        while time.monotonic() < tail_end:
            self.tick()
        self.demo.retire(monitor)
        watch.poll()
        self.say(f"{name} done: {watch.counts()}; {watch.means()}")
        return watch

    def finish(self, pre: SessionWatch, post: SessionWatch, http_port: int) -> None:
        """Both sessions are done: compare them in one line."""
        before, after = pre.mean("baseline"), post.mean("baseline")
        change = (
            f"mean baseline score {pre.session} {before:.2f} -> {post.session} {after:.2f}"
            if before is not None and after is not None
            else "no baseline score to compare"
        )
        self.say(
            f"both sessions done; {change}. The dashboard's summary compares them: "
            f"http://127.0.0.1:{http_port}/?session={self.args.site}/{post.session}"
        )
        self.say("the broker and the dashboard stay up; Ctrl-C stops everything")


def run_demo(args: argparse.Namespace) -> int:
    """Handler of ``neuroclip demo``."""
    plan = make_plan(args.session, args.session_s, args.protocol)
    broker_port = args.broker_port if port_free(args.broker_port) else free_port()
    http_port = args.port if port_free(args.port) else free_port()
    work = Path(tempfile.mkdtemp(prefix="neuroclip-demo-"))
    demo = Demo(work, embedded_broker=args.embedded_broker)
    run = _Run(args, demo, plan)

    def on_sigterm(signum: int, frame: object) -> None:
        run.stop_requested = True

    pre, post = plan.sessions
    print(
        f"NeuroCLIP demo: a synthetic patient's session {pre}, then {post} (the same patient "
        f"after the rTMS course), {plan.session_s:g} s each on the {plan.protocol} protocol "
        f"({plan.describe()}); site {args.site}. Research software, not a medical device. "
        f"Process output: {work}",
        flush=True,
    )
    if plan.warning():
        print(plan.warning(), flush=True)
    previous = signal.signal(signal.SIGTERM, on_sigterm)
    try:
        broker = run.start_services(broker_port, http_port)
        pre_watch = run.session(0, broker, http_port)
        post_watch = run.session(1, broker, http_port)
        run.finish(pre_watch, post_watch, http_port)
        while True:
            run.tick()
    except _StopDemoError as why:
        run.say(f"stopping the demo: {why}")
    except KeyboardInterrupt:
        print("stopping the demo", flush=True)
    finally:
        demo.stop()
        signal.signal(signal.SIGTERM, previous)
    print("demo stopped; no process left running", flush=True)
    return 0
