"""Deterministic stand-ins for the reader and retriever, for fast tests and examples.

They implement the same protocols as :class:`koqa.reader.QAReader` and
:class:`koqa.pipeline.corpus.Corpus` without any model.

>>> r = FakeReader({"수도는?": "서울"})
>>> [s.text for s in r.read("수도는?", ["대한민국의 수도는 서울이다.", "부산은 항구다."], top_k=2)]
['서울', '대한민국의']
>>> r.batches
[1]
"""

from __future__ import annotations

import math
import re
import threading
import time
from typing import Mapping, Sequence

from koqa.errors import NotFound
from koqa.pipeline.calibration import FEATURES, Calibration
from koqa.reader.base import Span
from koqa.store.filters import check_filters, matches
from koqa.types import Hit, Passage


class FakeReader:
    """Finds the answer it was told for a question; otherwise the first word of each context.

    ``batches`` records how many questions each ``read_batch`` call got, so tests
    can see batching; ``gate`` (a :class:`threading.Event`) holds every call until
    set, and ``delay`` sleeps in every call, so tests can fill a queue.
    """

    name = "fake-reader"

    def __init__(self, answers: Mapping[str, str] | None = None, *, delay: float = 0.0,
                 gate: threading.Event | None = None):
        self.answers = dict(answers or {})
        self.delay, self.gate = delay, gate
        self.batches: list[int] = []
        self._lock = threading.Lock()

    def read(self, question: str, contexts: str | Sequence[str], top_k: int = 1, **options) -> list[Span]:
        contexts = [contexts] if isinstance(contexts, str) else contexts
        return self.read_batch([question], [contexts], top_k, **options)[0]

    def read_batch(self, questions: Sequence[str], contexts: Sequence[Sequence[str]], top_k: int = 1, *,
                   handle_impossible_answer: bool = False, **_options) -> list[list[Span]]:
        with self._lock:
            self.batches.append(len(questions))
        if self.gate is not None:
            self.gate.wait(timeout=30)
        if self.delay:
            time.sleep(self.delay)
        return [self._read_one(q, ctxs, top_k, handle_impossible_answer) for q, ctxs in zip(questions, contexts)]

    def _read_one(self, question: str, contexts: Sequence[str], top_k: int, null: bool) -> list[Span]:
        target = self.answers.get(question)
        found: dict[tuple[int, int, int], float] = {}
        for i, ctx in enumerate(contexts):
            if target:
                for m in re.finditer(re.escape(target), ctx):
                    found[(i, m.start(), m.end())] = 8.0 - 0.1 * i
            first = re.search(r"\S+", ctx)
            if first:
                found.setdefault((i, first.start(), first.end()), -1.0 - 0.1 * i)
        if null:
            found[(0, 0, 0)] = 0.0
        total = sum(math.exp(s) for s in found.values()) or 1.0
        spans = [Span(contexts[i][a:b], a, b, s, math.sqrt(math.exp(s) / total), math.sqrt(math.exp(s) / total), i)
                 for (i, a, b), s in found.items()]
        spans.sort(key=lambda s: -s.score)
        return spans[:top_k]


class MemoryRetriever:
    """Collections of whole-document passages, ranked by shared character bigrams with the query."""

    def __init__(self, collections: Mapping[str, Sequence[tuple[str, str, str]]]):
        self.passages = {name: [Passage(f"{d}:0", d, 0, 0, len(text), text, title) for d, title, text in docs]
                         for name, docs in collections.items()}

    def retrieve(self, query: str, k: int = 10, *, collection: str = "default", mode: str = "hybrid",
                 filters: Mapping | None = None) -> list[Hit]:
        if collection not in self.passages:
            raise NotFound("collection", collection)
        grams, wanted = _bigrams(query), check_filters(filters)
        passages = [p for p in self.passages[collection]
                    if wanted is None or matches(wanted, {"doc_id": p.doc_id, "title": p.title, "source": p.source})]
        scored = [(len(grams & _bigrams(p.text)), p) for p in passages]
        scored.sort(key=lambda sp: -sp[0])
        top = max((s for s, _ in scored), default=0) or 1
        return [Hit(p, s / top, {"bm25": float(s), "dense": s / top, "hybrid": 1.0 / (60 + r)},
                    {"bm25": r, "dense": r, "hybrid": r})
                for r, (s, p) in enumerate(scored[:k], start=1)]


def _bigrams(text: str) -> set[str]:
    text = "".join(text.split())
    return {text[i:i + 2] for i in range(len(text) - 1)}


def handset_calibration(threshold: float = 0.25) -> Calibration:
    """Fixed hand-set weights (not fitted), so tests do not depend on the packaged calibration file."""
    weights = {"reader_prob": 3.0, "reader_logprob": 0.3, "margin": 0.3, "bm25_rel": 0.5, "rank_log": -0.5,
               "n_passages_log": 0.3}
    return Calibration(FEATURES, tuple(weights.get(f, 0.0) for f in FEATURES), -2.5, threshold=threshold,
                       fitted_on="hand-set (tests)")
