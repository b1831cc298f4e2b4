"""What the fault tests share beyond ``tests.live_parts``: faulty simulators, memory readings."""

from __future__ import annotations

from pathlib import Path

import yaml


def simulator_yaml(folder: Path, faults: list[dict] | None = None, **live) -> Path:
    """A ``neuroclip simulate`` YAML whose ``live`` section injects ``faults``."""
    path = folder / "simulate.yaml"
    path.write_text(yaml.safe_dump({"live": {**live, "faults": faults or []}}))
    return path


def rss_mib(pid: int) -> float:
    """Resident memory of a process in MiB, from ``/proc``."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


def window_times(message: dict, t_start: float) -> tuple[float, float]:
    """A score message's window in simulated seconds since the simulator's first sample."""
    return message["window"]["start"] - t_start, message["window"]["end"] - t_start
