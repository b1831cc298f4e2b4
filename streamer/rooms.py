"""Many rooms in one process: ``neuroclip monitor --config rooms.yaml``.

A rooms file is a monitor configuration with a ``rooms:`` list. The keys at its top level
(``model``, ``mqtt``, ``log``, ``windows``, ...) apply to every room; each entry of the list
is one room's own keys (``site``, ``session``, ``streams``, anything else it changes), laid
over them. Every room is a :class:`~streamer.monitor.Monitor` on the one event loop, with its
own LSL readers, window pipeline, session log, LSL score stream and MQTT connection (so its
own retained status and last will); they share one
:class:`~streamer.inference.InferenceEngine`, which batches the windows that fall due together
into one ONNX Runtime call.

Isolation: a room's events touch only its own pipeline; the engine batches only windows
already asked for, so no room waits for another's data; a room that fails (a stream that
never comes, data the bundle refuses) ends with its own final status and closing line while
the others go on. Ctrl-C or SIGTERM stops every room cleanly.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from contract.errors import ConfigError, NeuroclipError
from contract.settings import load_config, read_yaml
from models.bundle import Bundle
from streamer.config import MonitorConfig
from streamer.inference import InferenceEngine
from streamer.monitor import Monitor, MonitorResult

logger = logging.getLogger(__name__)

ROOMS_KEY = "rooms"
SHARED_ONLY = ("model",)
"""Keys a room may not set for itself: one process runs one model (one engine)."""


def is_rooms_file(path: Path | None) -> bool:
    """Whether the configuration file at ``path`` lists rooms."""
    return path is not None and ROOMS_KEY in read_yaml(Path(path))


def load_rooms(
    path: Path,
    *,
    overrides: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> list[MonitorConfig]:
    """One :class:`MonitorConfig` per room of the rooms file at ``path``.

    Precedence, lowest first: the embedded defaults, the file's shared keys, the room's
    own keys, ``NEUROCLIP_MONITOR__...`` variables, ``overrides`` (the CLI's flags); the
    latter two apply to every room.

    Raises
    ------
    ConfigError
        The list is missing, empty or not a list of mappings; a room sets a shared-only key;
        a value is wrong (named with its room); two rooms have the same site and session or
        read the same stream.
    """
    data = dict(read_yaml(path))
    rooms = data.pop(ROOMS_KEY, None)
    fix = "list the rooms as in configs/rooms.yaml: 'rooms:' then '- site: ...' entries."
    if not isinstance(rooms, list) or not rooms:
        raise ConfigError(
            f"{path}: '{ROOMS_KEY}' must be a non-empty list of rooms, found {rooms!r}.",
            key=ROOMS_KEY,
            fix=fix,
            path=path,
        )
    configs = []
    for i, room in enumerate(rooms, start=1):
        if not isinstance(room, Mapping):
            raise ConfigError(
                f"{path}: room {i} must be a mapping of keys (site, session, streams, ...), "
                f"found {room!r}.",
                key=f"{ROOMS_KEY}[{i}]",
                fix=fix,
                path=path,
            )
        for key in SHARED_ONLY:
            if key in room:
                raise ConfigError(
                    f"{path}: room {i} sets '{key}', which every room of one process shares "
                    "(one model, one inference engine).",
                    key=f"{ROOMS_KEY}[{i}].{key}",
                    fix=f"set '{key}' at the top level of the file, or run rooms that need "
                    "another model in a second process.",
                    path=path,
                )
        configs.append(
            load_config(
                MonitorConfig,
                path,
                name="monitor",
                overrides=overrides,
                environ=environ,
                layers=[(str(path), data), (f"{path} (room {i})", room)],
            )
        )
    _check_distinct(configs, path)
    return configs


def _check_distinct(configs: list[MonitorConfig], path: Path) -> None:
    """Refuse two rooms with one site and session, or reading one stream."""
    seen: dict[object, int] = {}
    for i, cfg in enumerate(configs, start=1):
        keys: list[tuple[str, object]] = [("site and session", (cfg.site, cfg.session))]
        keys += [
            (f"{role} stream", getattr(cfg.streams, role).predicate()) for role in ("eeg", "nirs")
        ]
        for what, key in keys:
            other = seen.setdefault((what, key), i)
            if other != i:
                raise ConfigError(
                    f"{path}: rooms {other} and {i} have the same {what} ({_shown(key)}); "
                    "each room needs its own.",
                    key=f"{ROOMS_KEY}[{i}]",
                    fix="give every room its own site/session and its own streams "
                    "(streams.eeg.name, streams.nirs.name, or their source_id).",
                    path=path,
                )


def _shown(key: object) -> str:
    return "/".join(key) if isinstance(key, tuple) else str(key)


@dataclass
class RoomOutcome:
    """How one room's run ended: its result, and the error if it failed."""

    result: MonitorResult
    error: BaseException | None = None


def spread_phases(configs: list[MonitorConfig], bundle_hop_s: float) -> list[MonitorConfig]:
    """Rooms whose ``windows.phase_s`` is unset get the grid phase ``i * hop / n``.

    Window ends lie on one grid of whole hops in LSL time, so without phases every room's
    window would fall due at the same instant and the last room's would wait for all the
    others to be cut and scored. Spread over the hop, each is cut while the others' data is
    still coming in. A room's phase is in its status (``windows.phase_s``); ``neuroclip score
    --phase`` cuts a recording's windows on the same grid.
    """
    n = len(configs)
    out = []
    for i, cfg in enumerate(configs):
        if cfg.windows.phase_s is None:
            hop = cfg.windows.hop_s or bundle_hop_s
            windows = dataclasses.replace(cfg.windows, phase_s=round(i * hop / n, 3))
            cfg = dataclasses.replace(cfg, windows=windows)
        out.append(cfg)
    return out


class Rooms:
    """Run one :class:`Monitor` per configuration on one loop, sharing one engine (with the
    grid phases spread over the hop, :func:`spread_phases`)."""

    def __init__(self, configs: list[MonitorConfig], bundle: Bundle):
        if not configs:
            raise ValueError("Rooms needs at least one room")
        configs = spread_phases(configs, bundle.signal_params.windows.hop_s)
        self.configs = configs
        self.bundle = bundle
        self.monitors: list[Monitor] = []
        self.engine: InferenceEngine | None = None
        self.stop_reason: str | None = None
        self._outcomes: dict[int, RoomOutcome] = {}

    def request_stop(self, reason: str) -> None:
        """Say why every room is about to be cancelled (``Ctrl-C``, ``SIGTERM``)."""
        self.stop_reason = self.stop_reason or reason
        for monitor in self.monitors:
            monitor.request_stop(reason)

    def result(self) -> list[RoomOutcome]:
        """How each room's run ended, or stands so far."""
        return [
            self._outcomes.get(i) or RoomOutcome(m.result()) for i, m in enumerate(self.monitors)
        ]

    async def run(self) -> list[RoomOutcome]:
        """Run every room until each ends; a room's failure ends only that room."""
        first = self.configs[0].model
        async with contextlib.AsyncExitStack() as stack:
            self.engine = await stack.enter_async_context(
                InferenceEngine(self.bundle, first.providers, first.threads)
            )
            self.monitors = [Monitor(cfg, self.bundle, engine=self.engine) for cfg in self.configs]
            if self.stop_reason is not None:  # asked to stop while the engine started
                self.request_stop(self.stop_reason)
            logger.info(
                "serving %d room(s) in one process: %s",
                len(self.monitors),
                ", ".join(f"{m.cfg.site}/{m.cfg.session}" for m in self.monitors),
            )
            tasks = [
                asyncio.create_task(self._room(i, m), name=f"neuroclip-room-{m.cfg.site}")
                for i, m in enumerate(self.monitors)
            ]
            try:
                # unlike gather, wait leaves the rooms running when this task is cancelled
                await asyncio.wait(tasks)
            except asyncio.CancelledError:
                # a stop: each room is cancelled once (a second cancel would cut its clean
                # stop short: the window in flight, the summary, the final status)
                for task in tasks:
                    task.cancel()
                await asyncio.wait(tasks)
                raise
        return self.result()

    async def _room(self, i: int, monitor: Monitor) -> None:
        """One room's run; its failure is logged and kept, never raised to the others."""
        room = f"{monitor.cfg.site}/{monitor.cfg.session}"
        try:
            self._outcomes[i] = RoomOutcome(await monitor.run())
        except NeuroclipError as exc:
            logger.error("room %s stopped: %s (the other rooms go on)", room, exc)
            self._outcomes[i] = RoomOutcome(monitor.result(), exc)
        except Exception as exc:
            logger.exception("room %s failed (the other rooms go on)", room)
            self._outcomes[i] = RoomOutcome(monitor.result(), exc)
