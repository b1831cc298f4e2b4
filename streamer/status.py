"""The monitor's status: the retained ``neuroclip.status/1`` message and its log line.

Assembled from the monitor's parts (stream health, the window pipeline, latency, the
outputs); kept apart from :mod:`streamer.monitor`, which is left with I/O and orchestration.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from contract.messages import STATUS_FORMAT

if TYPE_CHECKING:
    from streamer.monitor import Monitor


def status_message(monitor: Monitor, state: str, reason: str | None = None) -> dict:
    """The retained ``neuroclip.status/1`` message: state, model, streams, latency, outputs.

    ``state`` is ``starting``, ``online`` or ``offline``; ``online`` turns ``degraded``
    while a signal stream is down or stale, or the session log cannot be written. An
    ``offline`` status says why and when the monitor stopped (``stopped``): ``reason``, or
    the monitor's own once it has one (the last will, built at start, names its own).
    """
    now = monitor.clock()
    ref = monitor.bundle.meta["reference"].get("hc_score", {})
    stale_after = monitor.cfg.streams.stale_after_s
    streams = {
        r: h.snapshot(now, stale_after if r != "markers" else None)
        for r, h in monitor.health.items()
    }
    signals = [streams["eeg"], streams["nirs"]]
    if any(s["stale"] or not s["connected"] for s in signals) and state == "online":
        state = "degraded"
    if monitor.log is not None and monitor.log.error is not None and state == "online":
        state = "degraded"  # scores go on, but the record of truth is not being written
    return {
        "schema": STATUS_FORMAT,
        "site": monitor.cfg.site,
        "session": monitor.cfg.session,
        "state": state,
        "started_unix": round(monitor._started, 3),
        "emitted_unix": round(time.time(), 3),
        "model": {
            "name": monitor.ident.model_name,
            "sha256": monitor.ident.model_sha256,
            "providers": monitor.engine.providers if monitor.engine else [],
        },
        "reference": {
            "hc_band": [ref.get("p05"), ref.get("p95")],
            "hc_median": ref.get("median"),
        },
        "windows": {
            "emitted": monitor.windows_emitted,
            "usable": monitor.scoring.summary.usable,
            "hop_s": monitor.pipeline.hop_s,
            "window_s": monitor.pipeline.window_s,
            "warmup_s": monitor.pipeline.grid.warmup_s,
            "phase_s": monitor.pipeline.grid.phase_s,
            "first_in_s": _first_in(monitor, now),
        },
        "phase": _phase_now(monitor, now),
        "streams": streams,
        "latency_ms": monitor.latency.summary(),
        "broker": monitor.mqtt.snapshot()
        if monitor.mqtt
        else {"enabled": monitor.cfg.mqtt.enabled},
        "log": monitor.log.snapshot() if monitor.log else None,
        "stopped": {
            "reason": reason or monitor.stop_reason,
            "ended_unix": None if reason else _rounded(monitor.ended_unix),
        }
        if state == "offline"
        else None,
    }


def _rounded(unix: float | None) -> float | None:
    return None if unix is None else round(unix, 3)


def _first_in(monitor: Monitor, now: float) -> float | None:
    """Seconds until the first window is due (warm-up), ``None`` before the streams start
    and once windows come out."""
    end = monitor.pipeline.first_window_end()
    if end is None or monitor.windows_emitted:
        return None
    return round(max(0.0, end - monitor.pipeline.stream_time(now)), 1)


def _phase_now(monitor: Monitor, now: float) -> str | None:
    """The phase at the streams' clock (a replay faster than real time runs ahead)."""
    t = monitor.pipeline.stream_time(now)
    return monitor.pipeline.phases.info(t, t).phase


def status_line(status: dict) -> str:
    """One log line from a status message."""
    parts = []
    for role, s in status["streams"].items():
        if not s.get("connected"):
            parts.append(f"{role}: DOWN")
            continue
        rate = s["rate_effective"]
        if not s["rate_nominal"]:
            parts.append(f"{role}: {s['samples']} event(s)")
            continue
        parts.append(
            f"{role}: {rate if rate is not None else '-'}/{s['rate_nominal']:g} Hz "
            f"age {s['age_s']}s gaps {s['gaps']}"
        )
    total = status["latency_ms"].get("total", {})
    broker = status["broker"]
    broker_text = (
        "off"
        if not broker.get("enabled")
        else ("up" if broker["connected"] else "DOWN") + f" q={broker['queued']}"
    )
    log = status["log"] or {}
    return (
        f"{' | '.join(parts)} | windows {status['windows']['emitted']} "
        f"({status['windows']['usable']} usable) | latency p50 {total.get('p50', '-')} ms "
        f"p99 {total.get('p99', '-')} ms | broker {broker_text}"
        + ("" if log.get("ok", True) else f" | LOG ERROR {log.get('error')}")
    )
