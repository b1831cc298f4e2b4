"""The session log: append-only JSON lines, one per score, the record of truth.

Writes cross one named single-thread executor (file I/O never blocks the event loop) in
the order they were submitted. A write that fails (disk full, folder removed) keeps the
line in a bounded backlog, puts the error on the monitor's status and is retried with the
next line, so publishing goes on and nothing is lost while the backlog has room.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

from models.errors import OutputError

logger = logging.getLogger(__name__)


def log_path(folder: Path, site: str, session: str, started: datetime | None = None) -> Path:
    """``<folder>/<site>/<session>_<UTC start>.scores.jsonl``: one file per monitor run."""
    stamp = (started or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
    return folder / site / f"{session}_{stamp}.scores.jsonl"


class SessionLog:
    """Append lines to ``path``; an async context manager."""

    def __init__(self, path: Path, *, fsync: bool = False, backlog_max: int = 100_000):
        self.path = path
        self.fsync = fsync
        self.lines_written = 0
        self.error: str | None = None
        self.dropped = 0
        self._backlog: deque[str] = deque()
        self._backlog_max = backlog_max
        self._handle = None
        self._executor: ThreadPoolExecutor | None = None

    async def __aenter__(self) -> SessionLog:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._handle = self.path.open("a", encoding="utf-8")
        except OSError as exc:
            raise OutputError(
                f"Cannot open the session log {self.path}: {exc.strerror or exc}.",
                fix="set log.dir in the monitor configuration to a writable folder.",
                path=self.path,
            ) from None
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="neuroclip-log")
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._executor is not None:
            await asyncio.get_running_loop().run_in_executor(self._executor, self._close)
            self._executor.shutdown(wait=True)
            self._executor = None

    async def append(self, line: str) -> None:
        """Append one line (without its newline) after any backlog."""
        assert self._executor is not None, "use SessionLog as an async context manager"
        await asyncio.get_running_loop().run_in_executor(self._executor, self._append, line)

    def _append(self, line: str) -> None:
        if len(self._backlog) >= self._backlog_max:
            self._backlog.popleft()
            self.dropped += 1
        self._backlog.append(line)
        try:
            while self._backlog:
                self._handle.write(self._backlog[0] + "\n")
                self._handle.flush()
                if self.fsync:
                    os.fsync(self._handle.fileno())
                self._backlog.popleft()
                self.lines_written += 1
        except OSError as exc:
            message = f"cannot write {self.path}: {exc.strerror or exc}"
            if message != self.error:
                logger.error(
                    "session log: %s; %d line(s) held in memory", message, len(self._backlog)
                )
            self.error = message
            return
        if self.error is not None:
            logger.warning("session log writable again; backlog flushed")
        self.error = None

    def _close(self) -> None:
        if self._handle is not None:
            try:
                self._handle.close()
            except OSError as exc:
                logger.error("session log %s: close failed: %s", self.path, exc)
            self._handle = None

    def snapshot(self) -> dict[str, object]:
        """Plain values for the status message."""
        return {
            "path": str(self.path),
            "ok": self.error is None,
            "error": self.error,
            "lines": self.lines_written,
            "backlog": len(self._backlog),
            "dropped": self.dropped,
        }
