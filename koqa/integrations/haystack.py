"""Haystack components over koqa: a retriever of a koqa collection and the Korean extractive reader.

``pip install 'koqa[haystack]'``. Both follow Haystack's component contract: a cheap
``__init__`` that keeps only plain parameters (so ``to_dict``/``from_dict`` and YAML
round-trip them), models loaded in ``warm_up()`` (``Pipeline.run`` calls it; a lone
``run()`` warms up itself), and typed ``run()`` outputs.

>>> from haystack import Pipeline                                   # doctest: +SKIP
>>> p = Pipeline()                                                  # doctest: +SKIP
>>> p.add_component("retriever", KoqaRetriever("demo", top_k=20))  # doctest: +SKIP
>>> p.add_component("reader", KoqaReader())                        # doctest: +SKIP
>>> p.connect("retriever", "reader")                               # doctest: +SKIP
>>> q = "훈민정음을 창제한 왕은 누구인가?"
>>> p.run({"retriever": {"query": q}, "reader": {"query": q}})["reader"]["answers"][0].data  # doctest: +SKIP
'세종대왕'

``KoqaRetriever`` returns ``haystack.Document``s (id = the passage id, content = the
passage text, ``score`` = the retrieval score) whose ``meta`` holds the document id,
title, source, the passage's ``start``/``end`` in its document and each retriever's
``scores`` and ``ranks``. ``KoqaReader`` returns ``ExtractedAnswer``s: ``data`` the
answer, ``score`` koqa's calibrated confidence (what ``koqa ask`` reports),
``document_offset`` the span in ``document.content``, and ``meta`` the offsets in the
original koqa document. The no-answer (``data=None``, score = 1 − best confidence) comes
first when koqa abstains (best confidence below the threshold), else last.

Filters are koqa's (:mod:`koqa.store.filters`: ``{"source": "규정.pdf", "dept": ["법무"]}``);
a ``run(filters=...)`` replaces the ones given at construction. Loading a saved pipeline
imports this module, which Haystack allows only when asked:
``Pipeline.loads(yaml, allowed_modules=["koqa.integrations.haystack"])``.
"""

from __future__ import annotations

from typing import Any

from haystack import Document, component, default_from_dict, default_to_dict
from haystack.dataclasses import ExtractedAnswer

from koqa.integrations.common import (check_count, edge_settings, hit_from_meta, hit_meta, open_retrieval_corpus,
                                      read_hits, retrieve_hits)
from koqa.pipeline.depth import ReadingDepth
from koqa.pipeline.qa import MAX_ANSWERS, MAX_PASSAGES, QAResult, check_options
from koqa.retriever.base import check_mode
from koqa.store.filters import check_filters

__all__ = ["KoqaReader", "KoqaRetriever", "answers_of"]


@component
class KoqaRetriever:
    """Passages of a koqa collection for a query (hybrid, dense or BM25 retrieval).

    ``home``/``database_url``/``embedder`` left None come from the ``KOQA_*`` environment
    (read once, in ``warm_up``), as for ``koqa search``.
    """

    def __init__(self, collection: str = "default", *, top_k: int = 10, mode: str = "hybrid",
                 filters: dict[str, Any] | None = None, home: str | None = None,
                 database_url: str | None = None, embedder: str | None = None):
        check_count("top_k", top_k, MAX_PASSAGES)
        check_mode(mode)
        check_filters(filters)
        self.collection, self.top_k, self.mode, self.filters = collection, top_k, mode, filters
        self.home, self.database_url, self.embedder = home, database_url, embedder
        self._corpus = None

    def warm_up(self) -> None:
        """Open the store and load the embedder (once)."""
        if self._corpus is None:
            self._corpus = open_retrieval_corpus(home=self.home, database_url=self.database_url,
                                                 embedder=self.embedder, mode=self.mode)

    @component.output_types(documents=list[Document])
    def run(self, query: str, top_k: int | None = None, filters: dict[str, Any] | None = None,
            mode: str | None = None) -> dict[str, list[Document]]:
        """The ``top_k`` best passages for ``query``; ``filters``/``mode`` replace the constructor's."""
        self.warm_up()
        hits = retrieve_hits(self._corpus, query, self.collection, top_k=self.top_k, mode=self.mode,
                             filters=self.filters, call_top_k=top_k, call_mode=mode, call_filters=filters)
        return {"documents": [Document(id=h.passage.id, content=h.passage.text, score=h.score,
                                       meta=hit_meta(h, self.collection)) for h in hits]}

    def to_dict(self) -> dict[str, Any]:
        return default_to_dict(self, collection=self.collection, top_k=self.top_k, mode=self.mode,
                               filters=self.filters, home=self.home, database_url=self.database_url,
                               embedder=self.embedder)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "KoqaRetriever":
        return default_from_dict(cls, data)


@component
class KoqaReader:
    """koqa's Korean extractive reader over the documents it is given, with calibrated scores.

    ``reader``/``backend`` left None come from ``KOQA_READER``/``KOQA_READER_BACKEND``;
    ``calibration`` is a calibration JSON (default: the one packaged for the reader);
    ``read_first``/``stop_confidence`` are ``koqa ask``'s adaptive depth (``read_first=0``:
    read every document at once).
    """

    def __init__(self, reader: str | None = None, *, top_k: int = 5, threshold: float | None = None,
                 no_answer: bool = True, backend: str | None = None, calibration: str | None = None,
                 read_first: int = 5, stop_confidence: float = 0.5, home: str | None = None):
        check_count("top_k", top_k, MAX_ANSWERS)
        check_options(1, 1, "hybrid", threshold)  # names threshold when bad
        depth = ReadingDepth(read_first, stop_confidence) if read_first else None
        self.reader, self.top_k, self.threshold, self.no_answer = reader, top_k, threshold, bool(no_answer)
        self.backend, self.calibration, self.home = backend, calibration, home
        self.read_first, self.stop_confidence, self._depth = read_first, stop_confidence, depth
        self._reader = self._calibration = None

    def warm_up(self) -> None:
        """Load the reader model and its calibration (once)."""
        if self._reader is None:
            from koqa.pipeline.calibration import Calibration
            from koqa.pipeline.parts import load_reader

            settings = edge_settings(home=self.home, reader=self.reader, reader_backend=self.backend)
            self._calibration = Calibration.load(self.calibration) if self.calibration else None
            self._reader = load_reader(settings)

    @component.output_types(answers=list[ExtractedAnswer])
    def run(self, query: str, documents: list[Document], top_k: int | None = None,
            threshold: float | None = None) -> dict[str, list[ExtractedAnswer]]:
        """Up to ``top_k`` answers read from ``documents`` (in their retrieval order), plus the no-answer."""
        top_k = self.top_k if top_k is None else check_count("top_k", top_k, MAX_ANSWERS)
        threshold = self.threshold if threshold is None else threshold
        readable = [d for d in documents if isinstance(d.content, str) and d.content.strip()]
        hits = [hit_from_meta(d.id, d.content, d.score, d.meta) for d in readable]
        self.warm_up()
        result = read_hits(self._reader, query, hits, top_n=top_k, threshold=threshold,
                           calibration=self._calibration, depth=self._depth)
        return {"answers": answers_of(result, readable, no_answer=self.no_answer)}

    def to_dict(self) -> dict[str, Any]:
        return default_to_dict(self, reader=self.reader, top_k=self.top_k, threshold=self.threshold,
                               no_answer=self.no_answer, backend=self.backend, calibration=self.calibration,
                               read_first=self.read_first, stop_confidence=self.stop_confidence, home=self.home)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "KoqaReader":
        return default_from_dict(cls, data)


def answers_of(result: QAResult, documents: list[Document], *, no_answer: bool = True) -> list[ExtractedAnswer]:
    """``result``'s answers as ``ExtractedAnswer``s over ``documents`` (the hits, in order)."""
    by_id = {d.id: d for d in documents}
    hits = {h.passage.id: h.passage for h in result.hits}
    out = []
    for a in result.answers:
        doc, passage = by_id[a.passage_id], hits[a.passage_id]
        span = ExtractedAnswer.Span(a.start - passage.start, a.end - passage.start)
        out.append(ExtractedAnswer(
            query=result.question, score=a.score, data=a.text, document=doc, context=doc.content,
            document_offset=span, context_offset=span,
            meta={"doc_id": a.doc_id, "title": a.doc_title, "passage_id": a.passage_id, "start": a.start,
                  "end": a.end, "reader_score": a.reader_score, "retrieval_score": a.retrieval_score,
                  "sources": [dict(s) for s in a.sources]}))
    if no_answer:
        null = ExtractedAnswer(query=result.question, score=result.no_answer_score, data=None,
                               meta={"no_answer": True, "abstained": result.no_answer,
                                     "threshold": result.threshold})
        out = [null, *out] if result.no_answer else [*out, null]
    return out
