"""``neuroclip demo``: every part starts, scores reach the broker and the page, and Ctrl-C
leaves no process behind (with the embedded broker and with Mosquitto); a pre and a post
session on a compressed protocol show every phase, and the demo says how it goes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request

import pytest

from contract.errors import NeuroclipError
from contract.messages import SCORE_FORMAT
from tests.conftest import REPO
from tests.live_parts import free_port


def _children_of(pid: int) -> list[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True)
    return [int(p) for p in out.stdout.split()]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie is gone for our purpose
    state = subprocess.run(["ps", "-o", "stat=", "-p", str(pid)], capture_output=True, text=True)
    return bool(state.stdout.strip()) and not state.stdout.strip().startswith("Z")


@pytest.mark.parametrize("broker", ["embedded", "mosquitto"])
def _clean_up(demo: subprocess.Popen, client, reader: threading.Thread) -> None:
    """Stop the MQTT client, kill the demo if Ctrl-C did not stop it, drain its output."""
    client.loop_stop()
    if demo.poll() is None:
        demo.kill()
        demo.wait(10)
    reader.join(5)
    demo.stdout.close()


def test_the_demo_runs_everything_and_stops_everything(tmp_path, lsl_env, broker):
    import paho.mqtt.client as mqtt

    broker_port, http_port = free_port(), free_port()
    argv = [
        sys.executable,
        "-m",
        "neuroclip",
        "demo",
        "--port",
        str(http_port),
        "--broker-port",
        str(broker_port),
        "--log-dir",
        str(tmp_path / "sessions"),
    ]
    if broker == "embedded":
        argv.append("--embedded-broker")
    env = {
        **lsl_env,
        # a quicker first score than the monitor's 30 s warm-up
        "NEUROCLIP_MONITOR__WINDOWS__WARMUP_S": "2",
        "NEUROCLIP_MONITOR__WINDOWS__HOP_S": "1",
    }
    demo = subprocess.Popen(
        argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=REPO
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(demo.stdout), daemon=True)
    reader.start()
    scores: list[dict] = []
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    # amqtt 0.12 also hands a client that connects the retained messages matching other
    # clients' subscriptions (the dashboard's neuroclip/v1/#): keep the scores only
    client.on_message = lambda c, u, m: (
        scores.append(json.loads(m.payload)) if m.topic.endswith("/score") else None
    )
    try:
        deadline = time.monotonic() + 60
        while not any("Dashboard: http://" in line for line in lines):
            assert demo.poll() is None, "".join(lines)
            assert time.monotonic() < deadline, "no URL printed:\n" + "".join(lines)
            time.sleep(0.2)
        url = next(line for line in lines if "Dashboard:" in line).split("Dashboard: ")[1]
        with urllib.request.urlopen(url.strip(), timeout=10) as response:
            assert response.status == 200
        client.connect("127.0.0.1", broker_port)
        client.subscribe("neuroclip/v1/demo/P001-pre/score", qos=1)
        client.loop_start()
        deadline = time.monotonic() + 60
        while len(scores) < 3:
            assert demo.poll() is None, "".join(lines)
            assert time.monotonic() < deadline, "no score on the broker within 60 s"
            time.sleep(0.2)
        assert all(s["schema"] == SCORE_FORMAT for s in scores), scores
        children = _children_of(demo.pid)
        assert len(children) == 4, children  # broker, patient, monitor, dashboard
        demo.send_signal(signal.SIGINT)  # Ctrl-C
        assert demo.wait(60) in (0, 130)
    finally:
        _clean_up(demo, client, reader)
    time.sleep(0.5)
    left = [pid for pid in children if _alive(pid)]
    assert not left, f"processes left behind: {left}\n" + "".join(lines)
    assert "Traceback" not in "".join(lines)
    assert list((tmp_path / "sessions").rglob("*.scores.jsonl")), "the session log"


# --- two sessions on a compressed protocol, and what the demo says as it goes ------------

# the demo's protocol squeezed further (user settings win over the demo's), so that both
# sessions run in under two minutes: 10 s baseline, 5 s cues, two 2 s trains 6 s apart
_QUICK = {
    "NEUROCLIP_MONITOR__WINDOWS__WARMUP_S": "2",
    "NEUROCLIP_MONITOR__WINDOWS__HOP_S": "1",
    "NEUROCLIP_SIMULATE__PROTOCOL__BASELINE_S": "10",
    "NEUROCLIP_SIMULATE__PROTOCOL__CUE_BLOCK_S": "5",
    "NEUROCLIP_SIMULATE__PROTOCOL__REST_S": "3",
    "NEUROCLIP_SIMULATE__PROTOCOL__RTMS_TRAIN_S": "2",
    "NEUROCLIP_SIMULATE__PROTOCOL__RTMS_ITI_S": "4",
    "NEUROCLIP_SIMULATE__PROTOCOL__RTMS_TRAINS": "2",
}


def test_session_ids_pair_as_the_dashboard_pairs_them():
    from dashboard.summary import treatment_stage
    from neuroclip.demo import session_ids

    for given, expected in (
        ("P001-pre", ("P001-pre", "P001-post")),
        ("P002", ("P002-pre", "P002-post")),
        ("sub-07_ses-pre", ("sub-07_ses-pre", "sub-07_ses-post")),
        ("X.PRE", ("X.PRE", "X.POST")),
    ):
        pre, post = session_ids(given)
        assert (pre, post) == expected
        assert treatment_stage(pre) == (treatment_stage(pre)[0], "pre")
        assert treatment_stage(post) == (treatment_stage(pre)[0], "post")
    with pytest.raises(NeuroclipError, match="post-treatment"):
        session_ids("P001-post")


def test_the_demo_plan_is_compressed_and_its_baseline_outlasts_the_warm_up():
    from models.simulation.config import COMPRESSED_PROTOCOL, COMPRESSED_SESSION_S
    from neuroclip.demo import make_plan

    plan = make_plan("P001-pre", None, "compressed", environ={})
    assert plan.session_s == COMPRESSED_SESSION_S <= 4 * 60
    assert plan.baseline_s == COMPRESSED_PROTOCOL.baseline_s == 60.0
    assert plan.trains == (120.0, 140.0, 160.0) and plan.post_s == 180.0
    # the default model: 30 s warm-up plus one 10 s window, well inside the baseline
    assert plan.first_score_s == 40.0 and plan.warning() is None
    assert plan.env["NEUROCLIP_SIMULATE__PROTOCOL__RTMS_ITI_S"] == "16.0"
    late = make_plan("P001-pre", None, "compressed", {"NEUROCLIP_MONITOR__WINDOWS__WARMUP_S": "55"})
    assert late.warning() is not None and "65 s" in late.warning()
    # the user's own settings win over the demo's
    mine = make_plan("P001", 48, "compressed", _QUICK)
    assert "NEUROCLIP_SIMULATE__PROTOCOL__BASELINE_S" not in mine.env
    assert mine.baseline_s == 10.0 and mine.trains == (26.0, 32.0) and mine.post_s == 38.0
    standard = make_plan("P001", None, "standard", environ={})
    assert standard.env == {} and standard.session_s == 600.0 and standard.trains[0] == 235.0


def test_the_status_comes_from_the_session_log(tmp_path):
    from neuroclip.demo import SessionWatch

    folder = tmp_path / "demo"
    folder.mkdir()
    watch = SessionWatch(folder, "P001-pre", time.time())
    watch.poll()
    assert watch.status() == "no window yet (warm-up)"
    log = folder / "P001-pre_20250101T000000Z.scores.jsonl"

    def row(phase, cue, score, reasons=()):
        return json.dumps(
            {
                "phase": phase,
                "cue": cue,
                "usable": score is not None,
                "score": score,
                "smoothed": score,
                "quality": {"reasons": list(reasons)},
            }
        )

    log.write_text(
        row("baseline", None, 0.6)
        + "\n"
        + row("rtms_train", None, None, ["rtms_train", "tms_pulse"])
        + "\n"
        + row("post", "drug", 0.4)[:20]  # a line still being written
    )
    assert watch.poll() == ["baseline", "rtms_train"]  # the phases the new lines began
    assert watch.windows == 2 and watch.usable == 1
    assert watch.status() == (
        "phase rtms_train | cue - | 2 windows, 1 scored, 1 unusable (rtms_train 1, "
        "tms_pulse 1) | last score 0.60, smoothed 0.60"
    )
    log.write_text(log.read_text() + row("post", "drug", 0.4)[20:] + "\n")
    assert watch.poll() == ["post"]
    assert watch.windows == 3 and watch.phase == "post" and watch.cue == "drug"
    assert watch.means() == "mean score baseline 0.60, post 0.40"


def test_the_demo_runs_a_pre_then_a_post_session_and_says_how_it_goes(tmp_path, lsl_env):
    import paho.mqtt.client as mqtt

    broker_port, http_port = free_port(), free_port()
    sessions = tmp_path / "sessions"
    argv = [sys.executable, "-m", "neuroclip", "demo", "--port", str(http_port)]
    argv += ["--broker-port", str(broker_port), "--log-dir", str(sessions)]
    argv += ["--session", "P007", "--session-s", "48", "--status-every", "10"]
    demo = subprocess.Popen(
        argv,
        env={**lsl_env, **_QUICK},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=REPO,
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(demo.stdout), daemon=True)
    reader.start()
    children: set[int] = set()
    summaries: dict[str, dict] = {}
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    client.on_message = lambda c, u, m: (
        summaries.update({m.topic: json.loads(m.payload)}) if m.topic.endswith("/summary") else None
    )
    try:
        deadline = time.monotonic() + 300
        while not any("both sessions done" in line for line in lines):
            assert demo.poll() is None, "".join(lines)
            assert time.monotonic() < deadline, "the sessions did not end:\n" + "".join(lines)
            children.update(_children_of(demo.pid))
            time.sleep(0.5)
        client.connect("127.0.0.1", broker_port)
        client.subscribe("neuroclip/v1/demo/+/summary", qos=1)  # retained
        client.loop_start()
        deadline = time.monotonic() + 20
        while len(summaries) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        demo.send_signal(signal.SIGINT)  # Ctrl-C
        assert demo.wait(60) in (0, 130)
    finally:
        _clean_up(demo, client, reader)
    text = "".join(lines)
    assert "Traceback" not in text
    # the dashboard pairs the two sessions by their retained summaries
    assert set(summaries) == {f"neuroclip/v1/demo/P007-{s}/summary" for s in ("pre", "post")}
    # start-up progress, then a status line every 10 s, for each session
    for needle in ("broker up", "dashboard up on http://", "Dashboard: http://"):
        assert needle in text, text
    for index, session in enumerate(("P007-pre", "P007-post")):
        name = f"session {index + 1}/2 {session}"
        for needle in (f"{name}: streams up", f"{name}: monitor up", f"{name} done: "):
            assert needle in text, text
        assert f"{session}: first window scored; phase baseline" in text, text
        for phase in ("rtms_train", "inter_train", "post"):
            assert f"{session}: phase {phase}" in text, text
        status = [line for line in lines if f"] {session} 00:" in line and "| phase " in line]
        assert len(status) >= 2, text
        # every phase and both cues in each session's log, train windows unusable
        (log,) = (sessions / "demo").glob(f"{session}_*.scores.jsonl")
        rows = [json.loads(line) for line in log.read_text().splitlines()]
        assert {r["phase"] for r in rows} == {"baseline", "rtms_train", "inter_train", "post"}
        assert {r["cue"] for r in rows} >= {"drug", "neutral"}
        in_train = [r for r in rows if r["phase"] == "rtms_train"]
        assert in_train and not any(r["usable"] for r in in_train)
        assert any("rtms_train" in r["quality"]["reasons"] for r in rows)
    time.sleep(0.5)
    left = [pid for pid in children if _alive(pid)]
    assert not left, f"processes left behind: {left}\n" + text
