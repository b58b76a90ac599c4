"""Server options (read once at start-up by ``koqa serve`` or passed to ``create_app``).

>>> ServerConfig().max_wait_s
0.005
"""

from __future__ import annotations

from dataclasses import dataclass

from koqa.errors import InvalidInput
from koqa.ingest.isolated import ParseLimits
from koqa.pipeline.calibration import Calibration
from koqa.pipeline.depth import ReadingDepth


@dataclass(frozen=True)
class ServerConfig:
    """Micro-batching, limits and the API key of one server.

    ``max_batch_size`` questions at most go into one reader call; the batcher waits
    at most ``max_wait_ms`` for more after the first; a request that finds
    ``max_queue`` questions waiting gets 503 + ``Retry-After: retry_after_s``.
    ``api_key`` None means: the ``KOQA_API_KEY`` of the settings (None there too: open).

    ``POST /ask`` admits at most ``max_asks`` requests at a time (more get 503 +
    ``Retry-After`` at once, so the admitted ones keep a bounded latency) and gives each
    ``ask_deadline_s`` seconds before answering 503.  Uploaded files are parsed in a child
    process bounded by ``parse_limits`` (memory, time): a hostile file is a 422, and the
    memory its parsing took goes back with the child.
    """

    max_batch_size: int = 16
    max_wait_ms: float = 5.0
    max_queue: int = 64
    retry_after_s: int = 1
    max_asks: int = 16
    ask_deadline_s: float = 30.0
    max_body_bytes: int = 32 * 1024 * 1024
    api_key: str | None = None
    threshold: float | None = None  # abstain threshold; None = the calibration file's
    depth: ReadingDepth | None = ReadingDepth()  # adaptive reading depth; None = read all retrieved passages
    calibration: Calibration | None = None  # None = the reader's own (Calibration.for_reader)
    parse_limits: ParseLimits = ParseLimits()

    def __post_init__(self):
        for name in ("max_batch_size", "max_queue", "retry_after_s", "max_body_bytes", "max_asks"):
            if getattr(self, name) < 1:
                raise InvalidInput(name, getattr(self, name), "must be at least 1")
        if self.max_wait_ms < 0:
            raise InvalidInput("max_wait_ms", self.max_wait_ms, "must not be negative")
        if not self.ask_deadline_s > 0:
            raise InvalidInput("ask_deadline_s", self.ask_deadline_s, "must be positive")

    @property
    def max_wait_s(self) -> float:
        return self.max_wait_ms / 1000.0
