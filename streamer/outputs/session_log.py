"""The session log: append-only JSON lines, one per score, the record of truth.

Writes cross one named single-thread executor (file I/O never blocks the event loop) in
the order they were submitted. A write that fails (disk full, folder removed) keeps the
line in a bounded backlog, puts the error on the monitor's status and is retried with the
next line, so publishing goes on and nothing is lost while the backlog has room.

Lines go to the file with ``os.write`` (no Python buffer between), and a line the disk took
only part of is finished from where it stopped: a full disk never splits or repeats a line.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

from contract.errors import OutputError

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
        self._backlog: deque[bytes] = deque()
        self._backlog_max = backlog_max
        self._head_written = 0
        """Bytes of the first backlog line already in the file (after a short write)."""
        self._fd: int | None = None
        self._executor: ThreadPoolExecutor | None = None

    async def __aenter__(self) -> SessionLog:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
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
        if len(self._backlog) >= self._backlog_max and self._head_written == 0:
            self._backlog.popleft()
            self.dropped += 1
        self._backlog.append((line + "\n").encode("utf-8"))
        self._flush()

    def _flush(self) -> None:
        try:
            while self._backlog:
                data = self._backlog[0]
                self._head_written += os.write(self._fd, data[self._head_written :])
                if self._head_written < len(data):
                    continue  # a short write: the disk took part of the line
                if self.fsync:
                    os.fsync(self._fd)
                self._backlog.popleft()
                self._head_written = 0
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
        if self._backlog and self._fd is not None:
            self._flush()  # a last try: the disk may have room again
        if self._backlog:
            logger.error(
                "session log %s: %d line(s) could not be written (%s); they are lost",
                self.path,
                len(self._backlog),
                self.error,
            )
        if self._fd is not None:
            try:
                os.close(self._fd)
            except OSError as exc:
                logger.error("session log %s: close failed: %s", self.path, exc)
            self._fd = None

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
