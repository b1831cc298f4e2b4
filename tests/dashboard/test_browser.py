"""The dashboard in a real browser: headless Chromium (Debian's, driven by Playwright) loads the
page while a simulated session goes through the real monitor and a real Mosquitto.

One test walks what an operator sees, state by state: no session yet, the warm-up
countdown, the baseline with the session estimate, its interval and band, an rTMS train
shaded with its windows unusable and the lines broken there, the broker going away and
coming back, the streams lost, the session finished (SIGTERM) with its real count and its
report, and a link to a session that does not exist; basic auth is enforced throughout.
It saves a screenshot of each state as a test artifact in ``$NEUROCLIP_TEST_ARTIFACTS``
(default ``test-artifacts/``).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from dashboard.figures import SCORE_TRACES
from tests.conftest import REPO, missing_tool
from tests.live_parts import (
    free_port,
    monitor_config,
    start_cli,
    start_monitor,
    start_simulator,
    stop,
    unique,
)

ARTIFACTS = Path(os.environ.get("NEUROCLIP_TEST_ARTIFACTS", REPO / "test-artifacts"))
USER, PASSWORD = "operator", "correct horse battery staple"
_TRACE = "document.querySelector('#score-graph .js-plotly-plot')"


def js_length(name: str) -> str:
    """A JavaScript expression: points in the score figure's trace ``name`` (0 before it is
    drawn: the graph starts with no traces)."""
    return f"((({_TRACE} || {{}}).data || [])[{SCORE_TRACES.index(name)}]?.x?.length ?? 0)"


def chromium() -> str:
    """Debian's Chromium; the test command installs it (scripts/system-deps.sh)."""
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        missing_tool("chromium", "scripts/test.sh installs it with apt-get")
    return path


def trace_length(page, name: str) -> int:
    return page.evaluate(f"() => {js_length(name)}")


def wait_until(page, condition: str, timeout_s: float, what: str) -> None:
    """Wait for a JavaScript condition on the page, failing with what was awaited."""
    try:
        page.wait_for_function(condition, timeout=timeout_s * 1000, polling=100)
    except Exception as exc:  # Playwright's TimeoutError: say what did not happen
        page.screenshot(path=str(ARTIFACTS / "dashboard-failure.png"), full_page=True)
        pytest.fail(f"the page did not show {what} within {timeout_s:g} s ({exc})")


def start_dashboard(
    broker_port: int, http_port: int, env: dict, out: Path, sessions_dir: Path | None = None
) -> subprocess.Popen:
    """``neuroclip dashboard`` with basic auth, output to ``out``."""
    return start_cli(
        [
            sys.executable,
            "-m",
            "neuroclip",
            "dashboard",
            "--broker",
            f"mqtt://127.0.0.1:{broker_port}",
            "--port",
            str(http_port),
            *(["--sessions-dir", str(sessions_dir)] if sessions_dir else []),
        ],
        {
            **env,
            "NEUROCLIP_DASHBOARD__AUTH__USERNAME": USER,
            "NEUROCLIP_DASHBOARD__AUTH__PASSWORD": PASSWORD,
        },
        out,
    )


def wait_for_http(url: str, proc: subprocess.Popen, timeout_s: float = 30.0) -> int:
    """The HTTP status of ``url`` once the server answers (without credentials)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"the dashboard exited early:\n{stop(proc)}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return response.status
        except urllib.error.HTTPError as exc:
            return exc.code
        except OSError:
            time.sleep(0.2)
    pytest.fail(f"the dashboard did not answer on {url} within {timeout_s:g} s")


def shot(page, name: str) -> None:
    """A full-page screenshot of one state, kept as a test artifact."""
    page.screenshot(path=str(ARTIFACTS / f"dashboard-{name}.png"), full_page=True)


def text(page, selector: str) -> str:
    return page.locator(selector).inner_text()


def wait_text(page, selector: str, needle: str, timeout_s: float) -> str:
    """Wait until the element shows ``needle``; its text."""
    wait_until(
        page,
        f"() => (document.querySelector({selector!r})?.innerText || '').includes({needle!r})",
        timeout_s,
        f"{needle!r} in {selector}",
    )
    return text(page, selector)


def test_an_operator_sees_the_session_live_in_chromium(tmp_path, broker, lsl_env):
    """The treatment-room screen through every state: no session yet, warm-up, baseline
    with the estimate, a train, the broker down and back, the streams lost, the session
    finished with its report, and a link to a session that does not exist."""
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    prefix, session = unique("DASH"), "P01-pre"
    # a short protocol: 30 s baseline, one cue block, four rTMS trains 10 s apart, cue blocks
    sim_env = {
        **lsl_env,
        "NEUROCLIP_SIMULATE__PROTOCOL__BASELINE_S": "30",
        "NEUROCLIP_SIMULATE__PROTOCOL__RTMS_ITI_S": "6",
        "NEUROCLIP_SIMULATE__PROTOCOL__RTMS_TRAINS": "4",
        "NEUROCLIP_SIMULATE__PROTOCOL__CUE_BLOCKS_BEFORE_RTMS": "1",
    }
    http_port = free_port()
    url = f"http://127.0.0.1:{http_port}/"
    logs = tmp_path / "logs"
    procs: list[subprocess.Popen] = []
    try:
        dash = start_dashboard(
            broker.port, http_port, lsl_env, tmp_path / "dashboard.out", sessions_dir=logs
        )
        procs.append(dash)
        assert wait_for_http(url, dash) == 401, "basic auth must refuse a request without it"

        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium(), args=["--no-sandbox"])
            context = browser.new_context(
                http_credentials={"username": USER, "password": PASSWORD},
                viewport={"width": 1400, "height": 1500},
            )
            page = context.new_page()
            page.goto(url)

            # nothing on the broker yet: the page says what it waits for, and draws no axes
            wait_text(page, "#estimate", "Waiting for a session", 20)
            assert "No session on the broker yet" in text(page, "#sessions")
            shot(page, "empty")

            procs.append(start_simulator(prefix, sim_env, duration_s=300.0))
            config = monitor_config(
                tmp_path, prefix, session, broker.port, **{"windows.warmup_s": 12.0}
            )
            monitor = start_monitor(config, lsl_env)
            procs.append(monitor)

            # warm-up: a countdown to the first score, and still no axes
            row = page.locator("#session-row-lab-P01-pre")
            row.wait_for(timeout=30_000)
            countdown = wait_text(page, "#estimate", "first score is due", 30)
            assert "Warming up" in countdown
            assert page.locator("#score-graph .xtick").count() == 0, "no empty date axis"
            shot(page, "warmup")

            # baseline: the estimate large, its interval and band, per-part estimates
            page.locator("#estimate-value").wait_for(timeout=45_000)
            wait_until(page, f"() => {js_length('score')} >= 3", 20, "three window scores")
            assert float(text(page, "#estimate-value")) == pytest.approx(0.5, abs=0.5)
            assert "95 % interval" in text(page, "#estimate-interval")
            assert "healthy-control range" in text(page, "#estimate-band")
            wait_text(page, "#parts", "baseline", 15)
            assert "elapsed" in text(page, "#elapsed")
            first = trace_length(page, "score")
            wait_until(
                page, f"() => {js_length('score')} >= {first + 3}", 20, "the trajectory growing"
            )
            assert "online" in row.inner_text()
            # one window count: the headline's, the sessions table's, the quality panel's
            assert page.locator("#quality-verdict").inner_text().startswith("Window")
            assert page.locator("#eeg-channels .chan").count() == 32
            wait_until(
                page,
                "() => { const g = document.querySelector('#sci-strip .js-plotly-plot');"
                " return g && g.data && g.data.length && g.data[0].x.length === 18 }",
                10,
                "the fNIRS SCI strip",
            )
            assert "pairs good" in text(page, "#quality-nirs")
            assert "yes" in text(page, "#health-eeg") and "yes" in text(page, "#health-nirs")
            assert "inference" in text(page, "#latency")
            shot(page, "baseline")

            # a train: the phase says which, the train is shaded, its windows unusable and
            # every line broken there (no smoothed value, no estimate, no band)
            wait_text(page, "#phase-now", "train 1 of 4", 60)
            wait_until(page, f"() => {js_length('trains')} >= 6", 40, "an rTMS train shaded")
            wait_until(page, f"() => {js_length('unusable')} >= 1", 20, "unusable windows")
            gaps = page.evaluate(
                f"() => {{ const d = {_TRACE}.data;"
                f" const e = d[{SCORE_TRACES.index('estimate')}].y,"
                f" m = d[{SCORE_TRACES.index('smoothed')}].y;"
                " return e.filter(v => v === null).length + ':' +"
                " m.filter(v => v === null).length }"
            )
            assert all(int(n) >= 1 for n in gaps.split(":")), f"no gap in the lines: {gaps}"
            shot(page, "train")

            # the broker goes away: the page says so; it comes back: the page carries on
            banner = page.locator("#broker-banner")
            assert not banner.is_visible()
            broker.stop()
            banner.wait_for(state="visible", timeout=15_000)
            assert "unreachable" in banner.inner_text()
            shot(page, "broker-down")
            before = trace_length(page, "score") + trace_length(page, "unusable")
            broker.start()
            banner.wait_for(state="hidden", timeout=30_000)
            wait_until(
                page,
                f"() => {js_length('score')} + {js_length('unusable')} >= {before + 3}",
                30,
                "windows again after the broker came back",
            )

            # the streams are lost: health says so, the windows since are unusable
            stop(procs[1])
            wait_until(
                page,
                "() => /NO|stale/.test(document.querySelector('#health-eeg')?.innerText || '')",
                30,
                "the EEG stream shown lost",
            )
            lost_from = trace_length(page, "unusable")
            wait_until(
                page, f"() => {js_length('unusable')} >= {lost_from + 2}", 20, "lost windows"
            )
            shot(page, "streams-lost")

            # finished: SIGTERM stops the monitor like Ctrl-C; the page says when and why,
            # with the real count, and links to the session's report
            monitor.send_signal(signal.SIGTERM)
            assert monitor.wait(30) == 0, "SIGTERM is a clean stop"
            last_line = stop(monitor).strip().splitlines()[-1]
            assert last_line.startswith("monitor stopped (SIGTERM):"), last_line
            windows = int(last_line.split(": ")[1].split(" window")[0])
            finished = wait_text(page, "#session-banner", "Session finished", 20)
            assert "(SIGTERM)" in finished and f"{windows} windows scored" in finished
            assert f"{windows} windows scored" in text(page, "#window-count")
            assert "offline" in row.inner_text()
            shot(page, "finished")
            report = page.locator("#report-link")
            assert report.get_attribute("href") == "/report/lab/P01-pre"
            page.goto(url.rstrip("/") + report.get_attribute("href"))
            body = page.locator("body").inner_text()
            assert "Session lab/P01-pre" in body and "not a medical device" in body
            assert f"{windows} windows" in body
            shot(page, "report")

            # a link to a session that does not exist says so, and shows no other session
            page.goto(url + "?session=lab/NOPE")
            wait_text(page, "#session-banner", "No such session", 20)
            assert "lab/P01-pre" in text(page, "#session-banner")
            assert page.locator("#estimate-value").count() == 0
            shot(page, "no-such-session")
            browser.close()
    finally:
        outputs = [stop(p) for p in reversed(procs)]
    dashboard_output = outputs[-1]
    assert "Traceback" not in dashboard_output, dashboard_output
    assert PASSWORD not in dashboard_output, "a secret was logged"
