"""The dashboard in a real browser: headless Chromium (Debian's, driven by Playwright) loads the
page while a simulated session goes through the real monitor and a real Mosquitto.

One test walks what an operator sees: the session listed online, the score trace growing
by ``extendData``, an rTMS train shaded with its windows marked unusable, a cue marked, the
quality and stream-health panels filled, basic auth enforced, and the broker going away and
coming back (the page says so, then carries on by itself). It saves screenshots as test
artifacts in ``$NEUROCLIP_TEST_ARTIFACTS`` (default ``test-artifacts/``).
"""

from __future__ import annotations

import os
import shutil
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


def start_dashboard(broker_port: int, http_port: int, env: dict, out: Path) -> subprocess.Popen:
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


def test_an_operator_sees_the_session_live_in_chromium(tmp_path, broker, lsl_env):
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    prefix, session = unique("DASH"), "P01-pre"
    # a short protocol: two rTMS trains soon after the start, then a cue block
    sim_env = {
        **lsl_env,
        "NEUROCLIP_SIMULATE__PROTOCOL__BASELINE_S": "5",
        "NEUROCLIP_SIMULATE__PROTOCOL__RTMS_ITI_S": "6",
    }
    http_port = free_port()
    url = f"http://127.0.0.1:{http_port}/"
    procs: list[subprocess.Popen] = []
    try:
        procs.append(start_simulator(prefix, sim_env, duration_s=90.0))
        config = monitor_config(tmp_path, prefix, session, broker.port)
        procs.append(start_monitor(config, lsl_env))
        dash = start_dashboard(broker.port, http_port, lsl_env, tmp_path / "dashboard.out")
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

            row = page.locator("#session-row-lab-P01-pre")
            row.wait_for(timeout=30_000)
            wait_until(
                page,
                f"() => {js_length('score')} >= 3",
                45,
                "three scores",
            )
            first = trace_length(page, "score")
            wait_until(
                page,
                f"() => {js_length('score')} >= {first + 3}",
                20,
                "the score trace growing",
            )
            assert "online" in row.inner_text()

            # quality: the verdict, every EEG channel, every fNIRS pair in the SCI strip
            assert page.locator("#quality-verdict").inner_text().startswith("Window")
            assert page.locator("#eeg-channels .chan").count() == 32
            wait_until(
                page,
                "() => { const g = document.querySelector('#sci-strip .js-plotly-plot');"
                " return g && g.data && g.data[0].x.length === 18 }",
                10,
                "the fNIRS SCI strip",
            )
            assert "pairs good" in page.locator("#quality-nirs").inner_text()
            # stream health: both signal streams connected, latency per stage
            assert "yes" in page.locator("#health-eeg").inner_text()
            assert "yes" in page.locator("#health-nirs").inner_text()
            assert "inference" in page.locator("#latency").inner_text()

            # an rTMS train is shaded once it ends, its windows drawn as unusable; a cue marked
            wait_until(
                page,
                f"() => {js_length('trains')} >= 6",
                40,
                "an rTMS train shaded",
            )
            wait_until(
                page,
                f"() => {js_length('unusable')} >= 1",
                20,
                "unusable windows",
            )
            wait_until(
                page,
                f"() => {js_length('drug_cues')} + {js_length('neutral_cues')} >= 3",
                40,
                "a cue marked",
            )
            page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)

            # the broker goes away: the page says so; it comes back: the page carries on
            banner = page.locator("#broker-banner")
            assert not banner.is_visible()
            broker.stop()
            banner.wait_for(state="visible", timeout=15_000)
            assert "unreachable" in banner.inner_text()
            page.screenshot(path=str(ARTIFACTS / "dashboard-broker-down.png"), full_page=True)
            before = trace_length(page, "score") + trace_length(page, "unusable")
            broker.start()
            banner.wait_for(state="hidden", timeout=30_000)
            wait_until(
                page,
                f"() => {js_length('score')} + {js_length('unusable')} >= {before + 3}",
                30,
                "scores again after the broker came back",
            )
            browser.close()
    finally:
        outputs = [stop(p) for p in reversed(procs)]
    dashboard_output = outputs[0]
    assert "Traceback" not in dashboard_output, dashboard_output
    assert PASSWORD not in dashboard_output, "a secret was logged"
