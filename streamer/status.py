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


def status_message(monitor: Monitor, state: str) -> dict:
    """The retained ``neuroclip.status/1`` message: state, model, streams, latency, outputs.

    ``state`` is ``starting``, ``online`` or ``offline``; ``online`` turns ``degraded``
    while a signal stream is down or stale, or the session log cannot be written.
    """
    now = monitor.clock() if state != "offline" else None
    ref = monitor.bundle.meta["reference"].get("hc_score", {})
    stale_after = monitor.cfg.streams.stale_after_s
    streams = {}
    if now is not None:
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
            "usable": monitor.summary.usable,
            "hop_s": monitor.pipeline.hop_s,
            "window_s": monitor.pipeline.window_s,
        },
        "phase": _phase_now(monitor, now),
        "streams": streams,
        "latency_ms": monitor.latency.summary(),
        "broker": monitor.mqtt.snapshot()
        if monitor.mqtt
        else {"enabled": monitor.cfg.mqtt.enabled},
        "log": monitor.log.snapshot() if monitor.log else None,
    }


def _phase_now(monitor: Monitor, now: float | None) -> str | None:
    """The phase at the streams' clock (a replay faster than real time runs ahead)."""
    if now is None:
        return None
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
