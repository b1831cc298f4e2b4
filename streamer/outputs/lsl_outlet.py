"""The LSL score stream: each score message as a JSON string, stamped with its window end.

LabRecorder and any LSL tool can record it beside the raw EEG and fNIRS; the timestamp is
the window's end on the monitor's LSL clock, so scores line up with the data they describe.
"""

from __future__ import annotations

from contract.messages import SCORE_FORMAT
from models.io.stream_desc import SCORE_STREAM_TYPE


class ScoreOutlet:
    """A string LSL outlet for score messages; an async context manager."""

    def __init__(self, name: str, site: str, session: str, model_sha256: str):
        self.name = f"{name}-{site}-{session}"
        self.source_id = f"neuroclip-scores-{site}-{session}"
        self._model = model_sha256
        self._outlet = None
        self.pushed = 0

    async def __aenter__(self) -> ScoreOutlet:
        import pylsl

        info = pylsl.StreamInfo(
            self.name, SCORE_STREAM_TYPE, 1, pylsl.IRREGULAR_RATE, pylsl.cf_string, self.source_id
        )
        desc = info.desc()
        desc.append_child_value("schema", SCORE_FORMAT)
        desc.append_child_value("model_sha256", self._model)
        desc.append_child("channels").append_child("channel").append_child_value(
            "label", "score_json"
        )
        self._outlet = pylsl.StreamOutlet(info)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self._outlet = None

    def push(self, text: str, window_end: float) -> None:
        """Push one message (non-blocking in liblsl)."""
        if self._outlet is not None:
            self._outlet.push_sample([text], window_end)
            self.pushed += 1
