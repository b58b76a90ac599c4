"""The reader contract: question + context(s) → scored character spans.

Scoring (comparable across contexts and windows): each window's start and end
logits are taken relative to its own first ([CLS], "no answer") token, so a span's
``score`` = ``start_logit + end_logit − (cls_start + cls_end)`` is its log-odds
against "the answer is not in this window" (> 0: the model prefers the span).
``start_prob``/``end_prob`` are softmaxes of those anchored logits taken jointly
over the candidate tokens of *all* windows of *all* contexts of the question, so
they are comparable within a question (unlike the per-window softmax of the old
transformers pipeline, and unlike raw logits, whose offset differs per window).
``prob = start_prob * end_prob`` is the Hugging Face-style ``score``; with
``handle_impossible_answer`` the empty "no answer" span has ``score`` 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, Sequence

import numpy as np


@dataclass(frozen=True)
class TokenProbs:
    """Per-token start/end probabilities of one window, with char offsets in the context."""

    offsets: np.ndarray  # (n, 2) int, char offsets of each context token
    start: np.ndarray  # (n,) float
    end: np.ndarray  # (n,) float


@dataclass(frozen=True)
class Span:
    """One answer span of the reader. ``context[start:end] == text``."""

    text: str
    start: int
    end: int
    score: float
    start_prob: float
    end_prob: float
    context_index: int = 0
    token_probs: TokenProbs | None = None

    @property
    def prob(self) -> float:
        return self.start_prob * self.end_prob


class Reader(Protocol):
    """What the pipeline and the API need of a reader (:class:`koqa.reader.QAReader` has more options).

    ``max_answer_len`` (in tokens; None: the reader's default) bounds every span.
    """

    name: str

    def read(self, question: str, contexts: str | Sequence[str], top_k: int = 1, *,
             max_answer_len: int | None = None) -> list[Span]:
        """Top-k spans over all ``contexts`` of one question, best first."""
        ...

    def read_batch(self, questions: Sequence[str], contexts: Sequence[Sequence[str]], top_k: int = 1, *,
                   max_answer_len: int | None = None) -> list[list[Span]]:
        """Many questions at once, each with its own contexts, in one batched model pass."""
        ...
