"""The dashboard under load: publish-to-visible latency, a 4-hour history's render time, memory.

Processes, all on this machine: a Mosquitto on loopback, ``neuroclip dashboard`` on its
defaults (score refresh 400 ms, panels 1 s), this script's publisher (paho) and headless
Chromium (Debian's, driven by Playwright).

1. **History.** ``--history-sessions`` sessions of ``--history`` scores each (14,400: four
   hours at a 1 s hop) are published first, with their status and quality, as fast as the
   broker takes them. Two render times, both to the score figure holding every point the
   dashboard keeps of the session (``performance.now()`` in the page):
   - *switch*: an open page is pointed at another session (the deep link ``?session=``,
     as choosing it in the list does); from that request to drawn;
   - *page load*: a new page opens a session; from navigation start to drawn. The first
     load is cold (no cached scripts), the others warm, as for an operator who reopens it.
     It includes Chromium loading plotly.js (4.8 MB), whatever the session's length.
2. **Live.** A page stays open on one session while the publisher sends a score (plus its
   quality message) every ``1/--rate`` s. A poller in the page (every animation frame)
   stamps when the score trace grows; a score's latency is that stamp minus the wall-clock
   time just before it was published (same machine, same clock).
3. **Memory.** The dashboard's resident memory (psutil), sampled every 0.5 s throughout.

Run: ``.venv/bin/python benchmarks/dashboard_latency.py`` (needs Mosquitto, Chromium, and
the test and bench extras).
"""

from __future__ import annotations

import argparse
import json
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from dashboard.figures import SCORE_TRACES  # noqa: E402
from dashboard.history import ScoreHistory, ScorePoint  # noqa: E402

SCORE_INDEX = SCORE_TRACES.index("score")
SCORE_POINTS = (
    "((document.querySelector('#score-graph .js-plotly-plot') || {}).data || [])"
    f"[{SCORE_INDEX}]?.x?.length ?? 0"
)
"""JavaScript: points in the score trace (0 before the figure is drawn)."""
EEG = [f"E{i}" for i in range(32)]
PAIRS = [f"S{i}_D{i}" for i in range(18)]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_port(port: int, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise SystemExit(f"nothing listened on port {port} within {timeout_s:g} s")


def score_message(site: str, session: str, seq: int, hop_s: float, rng) -> dict:
    """A ``neuroclip.score/1`` message as the monitor sends it (every window usable)."""
    score = float(rng.uniform(0.05, 0.95))
    return {
        "schema": "neuroclip.score/1",
        "site": site,
        "session": session,
        "seq": seq,
        "window": {"start": 1000.0 + seq * hop_s - 10.0, "end": 1000.0 + seq * hop_s},
        "usable": True,
        "score": score,
        "interval": [max(0.0, score - 0.1), min(1.0, score + 0.1)],
        "distance_hc": 0.3,
        "distance_ma": 0.4,
        "smoothed": score,
        "quality": {
            "usable": True,
            "reasons": [],
            "eeg": {"bad_fraction": 0.03, "bad_channels": ["E1"]},
            "nirs": {"good_fraction": 0.9, "sci_median": 0.85, "bad_pairs": ["S3_D3"]},
        },
        "phase": "baseline",
        "cue": None,
        "model": {"name": "bench", "sha256": "0" * 64},
        "latency_ms": {k: 1.0 for k in ("ingest", "preprocess", "inference", "publish", "total")},
        "emitted_unix": time.time(),
    }


def quality_message(site: str, session: str, seq: int, rng) -> dict:
    return {
        "schema": "neuroclip.quality/1",
        "site": site,
        "session": session,
        "seq": seq,
        "window_end": 1000.0 + seq,
        "usable": True,
        "reasons": [],
        "eeg": {"channels": EEG, "flags": {"flat": ["E1"]}},
        "nirs": {"pairs": PAIRS, "sci": [round(float(v), 3) for v in rng.uniform(0, 1, 18)]},
    }


def status_message(site: str, session: str, emitted: int) -> dict:
    return {
        "schema": "neuroclip.status/1",
        "site": site,
        "session": session,
        "state": "online",
        "emitted_unix": time.time(),
        "reference": {"hc_band": [0.02, 0.45], "hc_median": 0.12},
        "windows": {"emitted": emitted},
        "streams": {},
        "latency_ms": {},
        "broker": {"enabled": True, "connected": True, "queued": 0, "dropped": 0},
        "log": {"ok": True},
        "model": {"name": "bench", "sha256": "0" * 64, "providers": ["CPUExecutionProvider"]},
    }


class Publisher:
    """paho in its own thread; QoS 1 so nothing is dropped on the way."""

    def __init__(self, port: int):
        import paho.mqtt.client as mqtt

        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-publisher")
        self.client.max_inflight_messages_set(1000)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def send(self, site: str, session: str, kind: str, message: dict, retain=False):
        topic = f"neuroclip/v1/{site}/{session}/{kind}"
        return self.client.publish(topic, json.dumps(message), qos=1, retain=retain)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def points_held(n: int) -> int:
    """How many points the dashboard keeps of an ``n``-window session."""
    history = ScoreHistory()
    for seq in range(n):
        history.add(ScorePoint(float(seq), seq, 0.5, 0.4, 0.6, 0.5, True, "baseline", None))
    return len(history.points())


def publish_history(pub: Publisher, sessions: int, windows: int) -> float:
    rng = np.random.default_rng(1)
    started = time.perf_counter()
    last = None
    for h in range(sessions):
        session = f"H{h}"
        pub.send("bench", session, "status", status_message("bench", session, windows), True)
        for seq in range(windows):
            last = pub.send("bench", session, "score", score_message("bench", session, seq, 1, rng))
            if seq % 500 == 499:  # keep paho's queue bounded
                last.wait_for_publish(60)
            if seq % 60 == 0:
                pub.send("bench", session, "quality", quality_message("bench", session, seq, rng))
    if last is not None:
        last.wait_for_publish(120)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="live publishing time")
    parser.add_argument("--rate", type=float, default=4.0, help="live scores per second")
    parser.add_argument("--history", type=int, default=14_400, help="scores per history session")
    parser.add_argument("--history-sessions", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=5, help="history page loads")
    args = parser.parse_args()

    import psutil
    from playwright.sync_api import sync_playwright

    work = Path(tempfile.mkdtemp(prefix="neuroclip-dash-bench-"))
    broker_port, http_port = _free_port(), _free_port()
    (work / "mosquitto.conf").write_text(
        f"user root\nlistener {broker_port} 127.0.0.1\nallow_anonymous true\n"
        "set_tcp_nodelay true\nmax_queued_messages 0\n"
    )
    mosquitto = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    broker = subprocess.Popen([mosquitto, "-c", str(work / "mosquitto.conf")])
    _wait_port(broker_port)
    dash_log = (work / "dashboard.out").open("w")
    dash = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "neuroclip",
            "dashboard",
            "--broker",
            f"mqtt://127.0.0.1:{broker_port}",
            "--port",
            str(http_port),
        ],
        cwd=REPO,
        stdout=dash_log,
        stderr=subprocess.STDOUT,
    )
    _wait_port(http_port)
    proc = psutil.Process(dash.pid)
    rss: list[float] = []
    sampling = threading.Event()

    def sample() -> None:
        while not sampling.is_set():
            rss.append(proc.memory_info().rss / 2**20)
            time.sleep(0.5)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    url = f"http://127.0.0.1:{http_port}/"
    urllib.request.urlopen(url, timeout=10).read()
    pub = Publisher(broker_port)
    try:
        took = publish_history(pub, args.history_sessions, args.history)
        held = points_held(args.history)
        print(
            f"published {args.history_sessions} x {args.history} scores in {took:.1f} s; "
            f"the dashboard keeps {held} points of each"
        )
        chrome = shutil.which("chromium") or "/usr/bin/chromium"
        condition = f"() => ({SCORE_POINTS}) >= {held}"
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chrome, args=["--no-sandbox"])
            context = browser.new_context(viewport={"width": 1400, "height": 1200})
            # wait until the dashboard has ingested the whole history
            page = context.new_page()
            page.goto(url + "?session=bench/H0")
            page.wait_for_function(condition, timeout=180_000, polling=200)
            page.close()
            renders = []
            for r in range(args.repeats):
                ctx = (
                    context if r else browser.new_context(viewport={"width": 1400, "height": 1200})
                )
                page = ctx.new_page()
                page.goto(url + f"?session=bench/H{r % args.history_sessions}")
                page.wait_for_function(condition, timeout=60_000, polling="raf")
                renders.append(page.evaluate("() => performance.now()") / 1000)
                page.close()
            print(
                "page load to a drawn 4-hour history (s): cold "
                f"{renders[0]:.2f}, warm {', '.join(f'{v:.2f}' for v in renders[1:])}; "
                f"median {np.median(renders):.2f}"
            )
            # switching sessions in an open page: the dashboard's own render of a history
            page = context.new_page()
            page.goto(url + "?session=bench/H0")
            page.wait_for_function(condition, timeout=60_000, polling="raf")
            switches = []
            for r in range(args.repeats):
                key = f"bench/H{(r + 1) % args.history_sessions}"
                drawn = (
                    "() => { const g = document.querySelector('#score-graph .js-plotly-plot');"
                    f" return g && g.layout && g.layout.uirevision === '{key}' &&"
                    f" ({SCORE_POINTS}) >= {held} }}"
                )
                started = page.evaluate(
                    f"""() => {{
                        const t0 = performance.now();
                        window.history.pushState({{}}, '', '?session={key}');
                        window.dispatchEvent(new CustomEvent('_dashprivate_pushstate'));
                        return t0;
                    }}"""
                )
                try:
                    page.wait_for_function(drawn, timeout=30_000, polling="raf")
                except Exception:
                    shown = page.evaluate(
                        "() => [location.search, document.querySelector("
                        "'#score-graph .js-plotly-plot').layout.uirevision, "
                        f"{SCORE_POINTS}, document.querySelector('#session-select').innerText]"
                    )
                    raise SystemExit(
                        f"switch to {key} not drawn in 30 s; the page shows {shown}"
                    ) from None
                switches.append((page.evaluate("() => performance.now()") - started) / 1000)
            page.close()
            print(
                "switch to another 4-hour session, request to drawn (s): "
                f"{', '.join(f'{v:.2f}' for v in switches)}; median {np.median(switches):.2f}"
            )

            # live: one page open, scores at --rate
            page = context.new_page()
            page.goto(url + "?session=bench/live")
            rng = np.random.default_rng(2)
            pub.send("bench", "live", "status", status_message("bench", "live", 0), True)
            pub.send("bench", "live", "score", score_message("bench", "live", 0, 1, rng))
            page.wait_for_function(f"() => ({SCORE_POINTS}) >= 1", timeout=30_000)
            page.evaluate(
                f"""() => {{
                    window.__seen = [];
                    let last = -1;
                    const look = () => {{
                        const n = {SCORE_POINTS};
                        if (n !== last) {{ window.__seen.push([Date.now(), n]); last = n; }}
                        requestAnimationFrame(look);
                    }};
                    look();
                }}"""
            )
            sent: list[float] = []
            n_live = int(args.seconds * args.rate)
            next_at = time.monotonic()
            for seq in range(1, n_live + 1):
                next_at += 1.0 / args.rate
                time.sleep(max(0.0, next_at - time.monotonic()))
                message = score_message("bench", "live", seq, 1, rng)
                sent.append(time.time())
                pub.send("bench", "live", "score", message)
                pub.send("bench", "live", "quality", quality_message("bench", "live", seq, rng))
            time.sleep(2.0)
            seen = page.evaluate("() => window.__seen")
            browser.close()
        latencies = []
        for seq, t_sent in enumerate(sent, start=1):
            shown = next((t / 1000 for t, n in seen if n >= seq + 1), None)
            if shown is not None:
                latencies.append(shown - t_sent)
        lat = np.array(latencies) * 1000
        print(
            f"publish-to-visible over {len(lat)}/{len(sent)} scores (ms): "
            f"p50 {np.percentile(lat, 50):.0f}, p95 {np.percentile(lat, 95):.0f}, "
            f"max {lat.max():.0f}"
        )
    finally:
        pub.close()
        sampling.set()
        sampler.join()
        dash.terminate()
        dash.wait(10)
        broker.terminate()
        broker.wait(10)
    print(f"dashboard memory (RSS, MiB): peak {max(rss):.0f}, last {rss[-1]:.0f}")


if __name__ == "__main__":
    main()
