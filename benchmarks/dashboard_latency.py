"""The dashboard under load: fresh page load, publish-to-visible latency, a 4-hour history's
render time, memory.

Processes, all on this machine: a Mosquitto on loopback, ``neuroclip dashboard`` on its
defaults (score refresh 400 ms, panels 1 s), this script's publisher (paho) and headless
Chromium (Debian's, driven by Playwright).

1. **Fresh page load.** A short session (``bench/fresh``: 60 scores and a quality message)
   is opened ``--fresh-loads`` times, each in a new browser context: an empty cache, as for
   an operator who opens the dashboard for the first time in a browser already running (one
   load before them is not counted: the browser's first page and the server's first
   requests). ``--fresh-full`` also loads each with Dash's full plotly.js (the partial
   bundle of ``dashboard/assets/`` refused), interleaved. Times from navigation start
   (``performance.now()`` in the page): DOM ready (``DOMContentLoaded``), and the first
   animation frame in which the score figure, then both figures (score and SCI strip),
   hold their data (a rAF poller installed before the page's own scripts). It says which
   plotly.js the page ran and how many bytes of plotly it fetched.
2. **History.** ``--history-sessions`` sessions of ``--history`` scores each (14,400: four
   hours at a 1 s hop) are published, with their status and quality, as fast as the broker
   takes them (0 skips this part). Two render times, both to the score figure holding
   every point the dashboard keeps of the session:
   - *switch*: an open page is pointed at another session (the deep link ``?session=``,
     as choosing it in the list does); from that request to drawn;
   - *page load*: a new page opens a session; from navigation start to drawn. The first
     load is cold (a new context: no cached scripts), the others warm, as for an operator
     who reopens it.
3. **Live.** A page stays open on ``bench/live`` while the publisher sends a score (plus its
   quality message) every ``1/--rate`` s. Each live score carries its seq in its value
   (``LIVE_BASE + seq * LIVE_STEP``), so a poller in the page (every animation frame)
   stamps when *that* score appears in the score trace of the figure of ``bench/live``
   (the figure's ``uirevision`` is its session) and nothing else (history sessions,
   retained messages, another session shown) can match. A score's latency is that stamp
   minus the wall-clock time just before it was published (same machine, same clock).
4. **Memory.** The dashboard's resident memory (psutil), sampled every 0.5 s throughout.

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
from dashboard.server import PLOTLY_BUNDLE  # noqa: E402

SCORE_INDEX = SCORE_TRACES.index("score")
SCORE_POINTS = (
    "((document.querySelector('#score-graph .js-plotly-plot') || {}).data || [])"
    f"[{SCORE_INDEX}]?.x?.length ?? 0"
)
"""JavaScript: points in the score trace (0 before the figure is drawn)."""
GRAPH = "document.querySelector('#score-graph .js-plotly-plot')"
SCI = "document.querySelector('#sci-strip .js-plotly-plot')"
EEG = [f"E{i}" for i in range(32)]
PAIRS = [f"S{i}_D{i}" for i in range(18)]
FRESH_SCORES = 60
LIVE_BASE, LIVE_STEP = 0.1, 1e-5
"""A live score's value is ``LIVE_BASE + seq * LIVE_STEP``: the page shows its seq."""
FIRST_DRAWN = f"""(() => {{
    const t = window.__firstDrawn = {{}};
    const look = () => {{
        const g = {GRAPH}, s = {SCI}, now = performance.now();
        if (t.score === undefined && g && g._fullData
            && ((g.data || [])[{SCORE_INDEX}]?.x?.length ?? 0) > 0) t.score = now;
        if (t.sci === undefined && s && s._fullData
            && ((s.data || [])[0]?.z?.[0]?.length ?? 0) > 0) t.sci = now;
        if (t.score !== undefined && t.sci !== undefined) {{
            t.all = Math.max(t.score, t.sci);
            return;
        }}
        requestAnimationFrame(look);
    }};
    requestAnimationFrame(look);
}})()"""
"""JavaScript run before the page's own scripts: ``window.__firstDrawn`` gets the time
(``performance.now()``) of the first animation frame in which the score figure, and the SCI
strip, hold data."""


def shows_session(key: str, min_points: int = 0) -> str:
    """JavaScript: the score figure is ``key``'s (its ``uirevision``) with ``min_points``."""
    return (
        f"() => {{ const g = {GRAPH}; return !!(g && g.layout && g.layout.uirevision === "
        f"'{key}' && ({SCORE_POINTS}) >= {min_points}) }}"
    )


def live_score(seq: int) -> float:
    return LIVE_BASE + seq * LIVE_STEP


def live_seq(score: float) -> int:
    return round((score - LIVE_BASE) / LIVE_STEP)


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


def score_message(
    site: str, session: str, seq: int, hop_s: float, rng, score: float | None = None
) -> dict:
    """A ``neuroclip.score/1`` message as the monitor sends it (every window usable); a
    random score unless given."""
    score = float(rng.uniform(0.05, 0.95)) if score is None else score
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


VIEWPORT = {"width": 1400, "height": 1200}


def open_session(context, url: str, key: str, min_points: int, timeout_s: float = 30.0):
    """A page of ``context`` showing ``key``'s figure with ``min_points`` scores.

    The page lands on ``key`` only if the dashboard knows it when the page lists the
    sessions; otherwise it shows another (and stays there), so it is opened again."""
    deadline = time.monotonic() + timeout_s
    page = context.new_page()
    while True:
        page.goto(url + f"?session={key}")
        try:
            page.wait_for_function(shows_session(key, min_points), timeout=10_000, polling=100)
            return page
        except Exception:
            if time.monotonic() > deadline:
                shown = page.evaluate(f"() => [{GRAPH}?.layout?.uirevision, {SCORE_POINTS}]")
                raise SystemExit(
                    f"the page did not show {key} with {min_points} scores in "
                    f"{timeout_s:g} s; it shows {shown}"
                ) from None


def fresh_page_loads(browser, url: str, pub: Publisher, repeats: int, full: bool) -> None:
    """Open a short session ``repeats`` times, each in a new browser context (empty cache);
    ``full``: each time also with Dash's full plotly.js instead of the partial bundle."""
    rng = np.random.default_rng(3)
    pub.send("bench", "fresh", "status", status_message("bench", "fresh", 0), True)
    # the page names the session once the dashboard has its retained status: subscribed
    context = browser.new_context(viewport=VIEWPORT)
    page = context.new_page()
    page.goto(url + "?session=bench/fresh")
    page.wait_for_function("() => document.body.innerText.includes('bench/fresh')", timeout=60_000)
    for seq in range(FRESH_SCORES):
        pub.send("bench", "fresh", "score", score_message("bench", "fresh", seq, 1, rng))
    pub.send("bench", "fresh", "quality", quality_message("bench", "fresh", seq, rng))
    page.wait_for_function(shows_session("bench/fresh", FRESH_SCORES), timeout=30_000)
    context.close()
    variants = ["served"] + (["full"] if full else [])
    rows: dict[str, list[dict]] = {v: [] for v in variants}
    for variant in variants:  # not counted: the browser's and the server's first page
        fresh_page_load(browser, url, block_partial=variant == "full")
    for _ in range(repeats):
        for variant in variants:  # interleaved: the machine's load weighs on both alike
            rows[variant].append(fresh_page_load(browser, url, block_partial=variant == "full"))
    for variant in variants:
        first = rows[variant][0]
        print(
            f"fresh page load, {repeats} new contexts, "
            + ("as served" if variant == "served" else "the partial plotly.js blocked")
            + f" (plotly.js {first['version']}: {', '.join(first['scripts'])}, "
            f"{first['bytes'] / 2**20:.2f} MiB):"
        )
        for name, what in (
            ("dom", "DOM ready"),
            ("score", "score figure drawn"),
            ("all", "both figures drawn"),
        ):
            values = [row[name] / 1000 for row in rows[variant]]
            print(
                f"  {what} (s): {', '.join(f'{v:.2f}' for v in values)}; "
                f"median {np.median(values):.2f}"
            )


def fresh_page_load(browser, url: str, block_partial: bool = False) -> dict:
    """One load of ``bench/fresh`` in a new context; times in ms from navigation start.
    ``block_partial``: the partial plotly.js of the assets is refused, so Dash loads its own
    full bundle (the page as it was before the partial bundle)."""
    context = browser.new_context(viewport=VIEWPORT)
    if block_partial:
        context.route(f"**/{PLOTLY_BUNDLE}*", lambda route: route.abort())
    context.add_init_script(FIRST_DRAWN)
    page = context.new_page()
    page.goto(url + "?session=bench/fresh", wait_until="commit")
    page.wait_for_function("() => window.__firstDrawn?.all !== undefined", timeout=60_000)
    row = page.evaluate(
        """() => {
            const nav = performance.getEntriesByType('navigation')[0];
            const plotly = performance.getEntriesByType('resource')
                .filter(e => /plotly[^/]*\\.js/.test(e.name) && e.encodedBodySize > 0);
            return {
                dom: nav.domContentLoadedEventEnd, ...window.__firstDrawn,
                version: window.Plotly?.version,
                scripts: plotly.map(e => e.name.split('/').pop().split('?')[0]),
                bytes: plotly.reduce((n, e) => n + e.encodedBodySize, 0),
            };
        }"""
    )
    context.close()
    return row


def history_renders(browser, context, url: str, sessions: int, held: int, repeats: int):
    condition = f"() => ({SCORE_POINTS}) >= {held}"
    # wait until the dashboard has ingested the whole history
    page = context.new_page()
    page.goto(url + "?session=bench/H0")
    page.wait_for_function(condition, timeout=180_000, polling=200)
    page.close()
    renders = []
    for r in range(repeats):
        ctx = context if r else browser.new_context(viewport=VIEWPORT)
        page = ctx.new_page()
        page.goto(url + f"?session=bench/H{r % sessions}")
        page.wait_for_function(condition, timeout=60_000, polling="raf")
        renders.append(page.evaluate("() => performance.now()") / 1000)
        page.close()
        if ctx is not context:
            ctx.close()
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
    for r in range(repeats):
        key = f"bench/H{(r + 1) % sessions}"
        started = page.evaluate(
            f"""() => {{
                const t0 = performance.now();
                window.history.pushState({{}}, '', '?session={key}');
                window.dispatchEvent(new CustomEvent('_dashprivate_pushstate'));
                return t0;
            }}"""
        )
        try:
            page.wait_for_function(shows_session(key, held), timeout=30_000, polling="raf")
        except Exception:
            shown = page.evaluate(
                f"() => [location.search, {GRAPH}.layout.uirevision, {SCORE_POINTS}, "
                "document.querySelector('#session-select').innerText]"
            )
            raise SystemExit(f"switch to {key} not drawn in 30 s; the page shows {shown}") from None
        switches.append((page.evaluate("() => performance.now()") - started) / 1000)
    page.close()
    print(
        "switch to another 4-hour session, request to drawn (s): "
        f"{', '.join(f'{v:.2f}' for v in switches)}; median {np.median(switches):.2f}"
    )


def live_latency(context, url: str, pub: Publisher, seconds: float, rate: float) -> None:
    """Scores of ``bench/live`` at ``rate`` for ``seconds``; each one's publish-to-visible."""
    key = "bench/live"
    rng = np.random.default_rng(2)
    pub.send("bench", "live", "status", status_message("bench", "live", 0), True)
    pub.send("bench", "live", "score", score_message("bench", "live", 0, 1, rng, live_score(0)))
    page = open_session(context, url, key, 1)
    # every animation frame: the first time each score value is in the live figure
    page.evaluate(
        f"""() => {{
            window.__seen = [];
            let drawn = 0, shown = null;
            const look = () => {{
                const g = {GRAPH}, now = performance.timeOrigin + performance.now();
                const key = g?.layout?.uirevision;
                const y = (g?.data || [])[{SCORE_INDEX}]?.y || [];
                if (key !== shown || y.length < drawn) {{ shown = key; drawn = 0; }}
                if (key === '{key}') {{
                    for (let i = drawn; i < y.length; i++) window.__seen.push([now, y[i]]);
                    drawn = y.length;
                }}
                requestAnimationFrame(look);
            }};
            look();
        }}"""
    )
    sent: dict[int, float] = {}
    n_live = int(seconds * rate)
    next_at = time.monotonic()
    for seq in range(1, n_live + 1):
        next_at += 1.0 / rate
        time.sleep(max(0.0, next_at - time.monotonic()))
        message = score_message("bench", "live", seq, 1, rng, live_score(seq))
        sent[seq] = time.time()
        pub.send("bench", "live", "score", message)
        pub.send("bench", "live", "quality", quality_message("bench", "live", seq, rng))
    time.sleep(2.0)
    shown: dict[int, float] = {}
    for t, y in page.evaluate("() => window.__seen"):
        shown.setdefault(live_seq(y), t / 1000)
    page.close()
    lat = np.array([shown[seq] - t for seq, t in sent.items() if seq in shown]) * 1000
    print(
        f"publish-to-visible over {len(lat)}/{len(sent)} scores (ms): "
        f"p50 {np.percentile(lat, 50):.0f}, p95 {np.percentile(lat, 95):.0f}, "
        f"min {lat.min():.0f}, max {lat.max():.0f}"
    )
    if lat.min() < 0:
        print("  a score was seen before it was sent: the clocks or the matching are wrong")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="live publishing time")
    parser.add_argument("--rate", type=float, default=4.0, help="live scores per second")
    parser.add_argument("--history", type=int, default=14_400, help="scores per history session")
    parser.add_argument("--history-sessions", type=int, default=8, help="0: no history part")
    parser.add_argument("--repeats", type=int, default=5, help="history page loads")
    parser.add_argument("--fresh-loads", type=int, default=5, help="fresh page loads")
    parser.add_argument(
        "--fresh-full",
        action="store_true",
        help="also load each fresh page with Dash's full plotly.js (the partial one blocked)",
    )
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
        chrome = shutil.which("chromium") or "/usr/bin/chromium"
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chrome, args=["--no-sandbox"])
            if args.fresh_loads:
                fresh_page_loads(browser, url, pub, args.fresh_loads, args.fresh_full)
            context = browser.new_context(viewport=VIEWPORT)
            if args.history_sessions:
                took = publish_history(pub, args.history_sessions, args.history)
                held = points_held(args.history)
                print(
                    f"published {args.history_sessions} x {args.history} scores in {took:.1f} s;"
                    f" the dashboard keeps {held} points of each"
                )
                history_renders(browser, context, url, args.history_sessions, held, args.repeats)
            if args.seconds:
                live_latency(context, url, pub, args.seconds, args.rate)
            browser.close()
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
