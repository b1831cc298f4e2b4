"""Ingest cost and latency: our LSL reader against mne-lsl's StreamLSL, same outlet, same run.

One process runs an EEG outlet (33 float32 channels at 500 Hz, a chunk of 5 samples every
10 ms, every sample stamped with the time its chunk is pushed). Two consumer processes read
it at the same time:

- ``ours``: :class:`streamer.lsl.reader.LslReader` (a thread pulling with ``min_samples=1``)
  handing chunks to an asyncio loop that writes them into a
  :class:`models.pipeline.ring.RingBuffer`;
- ``mne``: ``mne_lsl.stream.StreamLSL(bufsize=10).connect()`` with its default 1 ms
  acquisition delay.

Each consumer records, for every chunk that reaches its buffer, ``local_clock() - stamp`` of
the chunk's newest sample (for mne-lsl inside a callback, which runs in its acquisition
thread just before the buffer is updated), and its process CPU time over the measured span.
Repeated ``--repeats`` times; prints one JSON line per repeat and the medians of the ratios.

Run: ``.venv/bin/python benchmarks/ingest_vs_mne_lsl.py --seconds 60 --repeats 3``
(needs the bench extra: ``pip install -e .[bench]``; LSLAPICFG=configs/lsl/loopback.cfg).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import numpy as np

RATE = 500.0
CHANNELS = 33
CHUNK = 5  # samples per push: 10 ms


def run_outlet(name: str, seconds: float) -> None:
    import pylsl

    info = pylsl.StreamInfo(name, "EEG", CHANNELS, RATE, pylsl.cf_float32, name)
    chans = info.desc().append_child("channels")
    for i in range(CHANNELS):
        ch = chans.append_child("channel")
        ch.append_child_value("label", "counter" if i == CHANNELS - 1 else f"E{i}")
        ch.append_child_value("unit", "microvolts")
    outlet = pylsl.StreamOutlet(info, CHUNK)
    rng = np.random.default_rng(0)
    block = rng.standard_normal((CHUNK, CHANNELS)).astype(np.float32)
    start = pylsl.local_clock()
    k = 0
    while (now := pylsl.local_clock()) - start < seconds:
        due = int((now - start) * RATE)
        while k + CHUNK <= due:
            block[:, -1] = np.arange(k, k + CHUNK)
            # every sample of a chunk carries its push time, so that a consumer that gets
            # part of a chunk measures from the push, not from an earlier sample's time
            outlet.push_chunk(block, [pylsl.local_clock()] * CHUNK)
            k += CHUNK
        time.sleep(0.001)


def _cpu() -> float:
    t = os.times()
    return t.user + t.system


def run_ours(name: str, seconds: float, warmup: float) -> dict:
    import pylsl

    from models.pipeline.ring import RingBuffer
    from models.pipeline.streams import Chunk
    from neuroclip.monitoring import _SWITCH_INTERVAL_S
    from streamer.config import StreamMatch
    from streamer.health import StreamHealth
    from streamer.lsl.reader import LslReader

    sys.setswitchinterval(_SWITCH_INTERVAL_S)  # as `neuroclip monitor` sets it
    ring = RingBuffer(int(10 * RATE), CHANNELS - 1)
    lat: list[float] = []
    state = {"measuring": False}

    def sink(event) -> None:
        if isinstance(event, Chunk):
            ring.write(event.data)
            if state["measuring"]:
                lat.append(pylsl.local_clock() - float(event.stamps[-1]))

    async def main() -> tuple[float, float]:
        async with LslReader("eeg", StreamMatch(name=name), sink, StreamHealth("eeg")) as reader:
            await reader.wait_connected(20)
            await asyncio.sleep(warmup)
            state["measuring"] = True
            c0, w0 = _cpu(), time.perf_counter()
            await asyncio.sleep(seconds)
            state["measuring"] = False
            return _cpu() - c0, time.perf_counter() - w0

    cpu, wall = asyncio.run(main())
    return _summary("ours", lat, cpu, wall)


def run_mne(name: str, seconds: float, warmup: float) -> dict:
    import pylsl
    from mne_lsl.stream import StreamLSL

    lat: list[float] = []
    state = {"measuring": False}

    def callback(data, timestamps, info):
        if state["measuring"] and len(timestamps):
            lat.append(pylsl.local_clock() - float(timestamps[-1]))
        return data, timestamps

    stream = StreamLSL(bufsize=10, name=name)
    stream.connect(timeout=20)
    stream.add_callback(callback)
    time.sleep(warmup)
    state["measuring"] = True
    c0, w0 = _cpu(), time.perf_counter()
    time.sleep(seconds)
    state["measuring"] = False
    cpu, wall = _cpu() - c0, time.perf_counter() - w0
    stream.disconnect()
    return _summary("mne", lat, cpu, wall)


def _summary(who: str, lat: list[float], cpu: float, wall: float) -> dict:
    ms = np.asarray(lat) * 1000
    return {
        "who": who,
        "chunks": int(ms.size),
        "latency_p50_ms": float(np.percentile(ms, 50)),
        "latency_p99_ms": float(np.percentile(ms, 99)),
        "cpu_percent": 100 * cpu / wall,
    }


def orchestrate(seconds: float, repeats: int) -> None:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    rows = []
    for repeat in range(repeats):
        name = f"bench-ingest-{uuid.uuid4().hex[:6]}"
        outlet = subprocess.Popen(
            [
                sys.executable,
                __file__,
                "--role",
                "outlet",
                "--name",
                name,
                "--seconds",
                str(seconds + 30),
            ],
            env=env,
        )
        time.sleep(1.0)
        order = ["ours", "mne"] if repeat % 2 == 0 else ["mne", "ours"]
        procs = {
            who: subprocess.Popen(
                [
                    sys.executable,
                    __file__,
                    "--role",
                    who,
                    "--name",
                    name,
                    "--seconds",
                    str(seconds),
                ],
                env=env,
                stdout=subprocess.PIPE,
                text=True,
            )
            for who in order
        }
        result = {
            who: json.loads(p.communicate()[0].strip().splitlines()[-1]) for who, p in procs.items()
        }
        outlet.terminate()
        outlet.wait()
        row = {
            "repeat": repeat,
            **{f"{w}_{k}": v for w, r in result.items() for k, v in r.items() if k != "who"},
        }
        row["cpu_ratio"] = result["ours"]["cpu_percent"] / result["mne"]["cpu_percent"]
        row["latency_p50_ratio"] = (
            result["ours"]["latency_p50_ms"] / result["mne"]["latency_p50_ms"]
        )
        row["latency_p99_ratio"] = (
            result["ours"]["latency_p99_ms"] / result["mne"]["latency_p99_ms"]
        )
        print(json.dumps(row), flush=True)
        rows.append(row)
    medians = {k: float(np.median([r[k] for r in rows])) for k in rows[0] if k != "repeat"}
    print(json.dumps({"median": medians}, indent=1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--role", choices=["orchestrate", "outlet", "ours", "mne"], default="orchestrate"
    )
    parser.add_argument("--name", default="bench-ingest")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--warmup", type=float, default=5.0)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    if args.role == "orchestrate":
        orchestrate(args.seconds, args.repeats)
    elif args.role == "outlet":
        run_outlet(args.name, args.seconds)
    else:
        runner = run_ours if args.role == "ours" else run_mne
        print(json.dumps(runner(args.name, args.seconds, args.warmup)), flush=True)


if __name__ == "__main__":
    main()
