"""Which LSL resolver to use: how long each takes to find a stream, and to give up on one.

For ``--repeats`` rounds, on this machine's loopback:

- ``resolve_bypred(pred, 1, timeout)`` for a stream that does not exist: the wall time
  against the asked ``timeout`` (an overrun delays every stop and every reconnection);
- the same for a stream that exists (time to find);
- a :class:`pylsl.ContinuousResolver` polled every 0.1 s (as ``streamer/lsl/resolve.py``
  does): time to find a stream that exists, and time to notice a stop when none does.

Run: ``LSLAPICFG=configs/lsl/loopback.cfg .venv/bin/python benchmarks/lsl_resolve.py``
"""

from __future__ import annotations

import argparse
import json
import threading
import time
import uuid

import numpy as np


def main() -> None:
    import pylsl

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--timeout", type=float, default=0.5)
    args = parser.parse_args()
    name = f"resolve-bench-{uuid.uuid4().hex[:8]}"
    info = pylsl.StreamInfo(name, "EEG", 4, 500.0, pylsl.cf_float32, name)
    outlet = pylsl.StreamOutlet(info)
    present, absent = f"name='{name}'", f"name='{name}-absent'"
    rows: dict[str, list[float]] = {k: [] for k in ("bypred_absent", "bypred_present")}
    rows.update({"continuous_present": [], "continuous_stop": []})
    for _ in range(args.repeats):
        for key, pred in (("bypred_absent", absent), ("bypred_present", present)):
            start = time.perf_counter()
            pylsl.resolve_bypred(pred, 1, args.timeout)
            rows[key].append(time.perf_counter() - start)
        start = time.perf_counter()
        resolver = pylsl.ContinuousResolver(pred=present)
        while not resolver.results():
            time.sleep(0.1)
        rows["continuous_present"].append(time.perf_counter() - start)
        del resolver
        stop = threading.Event()
        threading.Timer(args.timeout, stop.set).start()
        start = time.perf_counter()
        resolver = pylsl.ContinuousResolver(pred=absent)
        while not stop.is_set() and not resolver.results():
            stop.wait(0.1)
        rows["continuous_stop"].append(time.perf_counter() - start)
        del resolver
    del outlet
    summary = {
        key: {
            "median_s": round(float(np.median(v)), 3),
            "max_s": round(float(np.max(v)), 3),
        }
        for key, v in rows.items()
    }
    print(json.dumps({"timeout_s": args.timeout, "repeats": args.repeats, **summary}, indent=1))


if __name__ == "__main__":
    main()
