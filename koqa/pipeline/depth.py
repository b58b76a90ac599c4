"""Adaptive reading depth: read the best passages first, the rest only when the answer is not decisive.

With ``ReadingDepth(first=5, stop_confidence=0.5)`` (the pipeline's default) it
reads the top 5 retrieved passages; if the best answer's calibrated confidence (the
calibration's first-pass model) is then ≥ 0.5 it stops, otherwise it reads the
remaining passages and ranks the answers of both passes together. The reader's span
scores (anchored logit sums) compare across calls; its probabilities are normalised
per call, so :func:`merge_stages` rescales them to one joint normalisation (exact for
a single pass, an approximation for two, see there).

>>> from koqa.reader.base import Span
>>> a = [Span("세종", 0, 2, 2.0, 0.5, 0.5, 0)]          # prob .25 of call 1
>>> b = [Span("세종", 0, 2, 2.0, 0.5, 0.5, 0)]          # the same span in call 2
>>> [(s.context_index, round(s.prob, 4)) for s in merge_stages(a, b, offset=5, top_k=5)]
[(0, 0.0625), (5, 0.0625)]
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Sequence

from koqa.errors import InvalidInput
from koqa.reader.base import Span


@dataclass(frozen=True)
class ReadingDepth:
    """Read ``first`` passages, then the rest unless the best confidence is ≥ ``stop_confidence``."""

    first: int = 5
    # the answer is usually in the best few retrieved passages, and a calibrated confidence of 0.5 is where a
    # first-pass answer is more often right than wrong, so most questions stop after `first` passages at
    # about the F1 of reading them all (chosen with bench/open_domain.py; numbers in the reader model cards)
    stop_confidence: float = 0.5

    def __post_init__(self):
        if isinstance(self.first, bool) or not isinstance(self.first, int) or self.first < 1:
            raise InvalidInput("depth.first", self.first, "must be an integer ≥ 1")
        if not 0.0 <= self.stop_confidence <= 1.0:
            raise InvalidInput("depth.stop_confidence", self.stop_confidence, "must be in [0, 1]")

    def stages(self, n_passages: int) -> list[tuple[int, int]]:
        """Passage ranges read in order: ``[(0, first), (first, n)]``, or one range when n ≤ first."""
        if n_passages <= self.first:
            return [(0, n_passages)]
        return [(0, self.first), (self.first, n_passages)]


def _log_partition(spans: Sequence[Span]) -> float | None:
    """``score − log prob``: one constant per reader call (log Z_start + log Z_end)."""
    best = max(spans, key=lambda s: s.prob, default=None)
    if best is None or best.prob <= 0.0:
        return None
    return best.score - math.log(best.prob)


def merge_stages(previous: Sequence[Span], new: Sequence[Span], offset: int, top_k: int) -> list[Span]:
    """Spans of an earlier pass and of a new pass over passages ``offset…`` as if read in one call.

    The joint start (end) softmax partition is the sum of the calls' partitions. Each
    call only reveals the product Z_start·Z_end (via ``score − log prob``), so it is
    split evenly between start and end — exact when the two softmaxes have the same
    ratio of mass in both calls, which holds closely for passages of one question.
    """
    new = [replace(s, context_index=s.context_index + offset) for s in new]
    if not previous or not new:
        return sorted([*previous, *new], key=lambda s: -s.score)[:top_k]
    halves = [_log_partition(previous), _log_partition(new)]
    if None in halves:
        return sorted([*previous, *new], key=lambda s: -s.score)[:top_k]
    h_prev, h_new = 0.5 * halves[0], 0.5 * halves[1]
    joint = max(h_prev, h_new) + math.log1p(math.exp(-abs(h_prev - h_new)))
    scaled = [_rescale(s, math.exp(h_prev - joint)) for s in previous]
    scaled += [_rescale(s, math.exp(h_new - joint)) for s in new]
    return sorted(scaled, key=lambda s: -s.score)[:top_k]


def _rescale(span: Span, factor: float) -> Span:
    return replace(span, start_prob=span.start_prob * factor, end_prob=span.end_prob * factor)
