"""Replay timing at speed 1: inter-stream alignment and drift over a whole session.

``neuroclip replay`` publishes a recorded session; this script reads the EEG and NIRS outlets
(pylsl inlets, no post-processing) and compares, for every sample (identified by its counter
channel), the received timestamp with the recording's own time:

- *timestamp alignment*: (NIRS stamp - its recorded time) - (EEG stamp - its recorded time);
  0 means the two streams keep the recording's relative timing exactly;
- *arrival*: local LSL clock at receipt minus the sample's stamp, per stream, and the
  difference between the streams at the same moment (what a reader sees live); its trend
  over the session shows whether the replay's clock drifts against LSL's.

Run: ``.venv/bin/python benchmarks/replay_alignment.py /tmp/sim30/sub-01/ses-base`` (30 min;
``--seconds 120`` for a short check). Uses LSLAPICFG=configs/lsl/loopback.cfg.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from models.io.sessions import read_session  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("session", type=Path)
    parser.add_argument("--seconds", type=float, help="stop after this long (default: all)")
    args = parser.parse_args()
    import pylsl

    os.environ.setdefault("LSLAPICFG", str(REPO / "configs" / "lsl" / "loopback.cfg"))
    recording = read_session(args.session)
    prefix = f"ALN{uuid.uuid4().hex[:6]}"
    replay = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "neuroclip",
            "replay",
            str(args.session),
            "--name-prefix",
            prefix,
            "--wait-consumers",
            "30",
            "--no-model-check",
        ],
        stdout=subprocess.DEVNULL,
        cwd=REPO,
    )
    inlets = {}
    for role in ("EEG", "NIRS"):
        found = pylsl.resolve_byprop("name", f"{prefix}-{role}", 1, 30)
        if not found:
            replay.kill()
            raise SystemExit(f"no {prefix}-{role} outlet")
        inlets[role] = pylsl.StreamInlet(found[0], max_buflen=360)
        inlets[role].open_stream(10)
    got = {role: ([], [], []) for role in inlets}  # counter, stamp, received
    started = time.monotonic()
    while replay.poll() is None:
        for role, inlet in inlets.items():
            data, stamps = inlet.pull_chunk(timeout=0.0)
            if stamps:
                now = pylsl.local_clock()
                got[role][0].extend(int(row[-1]) for row in data)
                got[role][1].extend(stamps)
                got[role][2].extend([now] * len(stamps))
        if args.seconds and time.monotonic() - started > args.seconds:
            replay.terminate()
            break
        time.sleep(0.002)
    replay.wait(30)
    blocks = {"EEG": recording.eeg, "NIRS": recording.nirs}
    offsets, late = {}, {}
    for role, (counter, stamps, received) in got.items():
        idx = np.asarray(counter)
        recorded = blocks[role].times[idx]
        offsets[role] = (np.asarray(stamps) - recorded, np.asarray(stamps))
        late[role] = np.asarray(received) - np.asarray(stamps)
    # align on time: for every NIRS sample, the EEG offset at the nearest EEG stamp
    eeg_off, eeg_stamps = offsets["EEG"]
    nirs_off, nirs_stamps = offsets["NIRS"]
    nearest = np.clip(np.searchsorted(eeg_stamps, nirs_stamps), 0, len(eeg_stamps) - 1)
    alignment_ms = 1000 * (nirs_off - eeg_off[nearest])
    skew_ms = 1000 * (late["NIRS"] - late["EEG"][nearest])
    minutes = (eeg_stamps[-1] - eeg_stamps[0]) / 60
    n = len(late["EEG"])
    first, last = late["EEG"][: n // 20], late["EEG"][-(n // 20) :]
    print(
        f"{minutes:.1f} min replayed: {len(eeg_stamps)} EEG and {len(nirs_stamps)} NIRS samples "
        f"received\ntimestamp alignment NIRS vs EEG (ms): max |x| "
        f"{np.abs(alignment_ms).max():.6f}\narrival lateness (ms) EEG p50 "
        f"{1000 * np.median(late['EEG']):.1f} p99 {1000 * np.percentile(late['EEG'], 99):.1f}; "
        f"NIRS p50 {1000 * np.median(late['NIRS']):.1f} p99 "
        f"{1000 * np.percentile(late['NIRS'], 99):.1f}\narrival skew NIRS - EEG (ms): p50 "
        f"{np.median(skew_ms):.1f} p99 {np.percentile(skew_ms, 99):.1f} max "
        f"{np.abs(skew_ms).max():.1f}\nEEG lateness first vs last 5 % of the session (ms): "
        f"{1000 * np.median(first):.2f} vs {1000 * np.median(last):.2f}"
    )


if __name__ == "__main__":
    main()
