"""The boundary types of koqa: one frozen dataclass per hand-over.

``Document`` (ingested, NFC text) → ``Chunk`` (ingest's cut, with its BM25 terms) →
``Prepared`` (a document's chunks and vectors, handed to the store) → ``Passage``
(a stored chunk with offsets into the document) → ``Hit`` (a passage with retrieval scores) → ``Answer`` (a span of a
passage with reader and combined scores, offsets into the original document).

>>> doc = Document(id="d1", text="세종대왕은 훈민정음을 창제하였다.", title="세종")
>>> p = Passage(id="d1:0", doc_id="d1", index=0, start=0, end=len(doc.text), text=doc.text)
>>> doc.text[p.start:p.end] == p.text
True
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping


@dataclass(frozen=True)
class Document:
    """A whole ingested document. ``text`` is NFC-normalised."""

    id: str
    text: str
    title: str = ""
    source: str = ""
    meta: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Passage:
    """A chunk of a document: ``document.text[start:end] == text``."""

    id: str
    doc_id: str
    index: int
    start: int
    end: int
    text: str
    title: str = ""
    source: str = ""


@dataclass(frozen=True)
class Hit:
    """A retrieved passage.

    ``score`` is the score the retriever ranked by (the fused RRF score in hybrid
    mode); ``scores`` keeps each retriever's own score, e.g. ``{"dense": 0.83,
    "bm25": 11.2, "hybrid": 0.031}``, and ``ranks`` each retriever's 1-based rank.
    """

    passage: Passage
    score: float
    scores: Mapping[str, float] = field(default_factory=dict)
    ranks: Mapping[str, int] = field(default_factory=dict)

    def record(self, rank: int) -> dict:
        """The flat JSON form of a search result (``koqa search --json``, ``POST /search``)."""
        p = self.passage
        return {"rank": rank, "passage_id": p.id, "doc_id": p.doc_id, "title": p.title, "source": p.source,
                "start": p.start, "end": p.end, "score": self.score, "scores": dict(self.scores),
                "ranks": dict(self.ranks), "text": p.text}


@dataclass(frozen=True)
class Answer:
    """One ranked answer of the QA pipeline.

    ``start``/``end`` are character offsets into the original document text;
    ``score`` is the calibrated combined confidence in [0, 1].
    """

    text: str
    score: float
    reader_score: float
    retrieval_score: float
    doc_id: str
    doc_title: str
    passage_id: str
    start: int
    end: int
    context: str = ""
    sources: tuple[Mapping[str, Any], ...] = ()


@dataclass(frozen=True)
class Chunk:
    """A passage before it is stored: ``document.text[start:end] == text``."""

    index: int
    start: int
    end: int
    text: str
    terms: tuple[str, ...]
    n_tokens: int


@dataclass(frozen=True)
class Prepared:
    """A document ready to commit: its chunks, their vectors, and whether it replaces one."""

    document: Document
    content_hash: str
    chunks: list[Chunk]
    vectors: Any  # (len(chunks), dim) float32 numpy array
    replaces: bool
