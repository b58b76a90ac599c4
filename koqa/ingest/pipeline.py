"""The ingest pipeline: skip unchanged → chunk → embed in batches → commit whole documents.

Documents are read ahead in windows (so the progress total is known for ordinary
corpora), chunked in one Kiwi batch per window, embedded ``batch_size`` passages at a
time, and handed to a :class:`Sink` as soon as all passages of a document are embedded.
The sink commits each group in one SQL transaction, so a document is stored whole or
not at all. The report separates the embedder's own time from everything else, the
ingest overhead.

>>> report = IngestReport(added=["a"], updated=[], skipped=["b"], failed=[("x.bin", "binary file")])
>>> report.counts
{'added': 1, 'updated': 0, 'skipped': 1, 'failed': 1}
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator, Protocol, Sequence

import numpy as np

from koqa.ingest.chunking import Chunker
from koqa.ingest.loaders import LoadError, content_id, normalize_text
from koqa.types import Chunk, Document, Prepared


@dataclass(frozen=True)
class IngestReport:
    """What an ingest did: document ids per outcome, failures as ``(source, reason)``.

    ``timings`` holds seconds per stage (``load``, ``chunk``, ``embed``, ``store``,
    ``index``, ``save``, ``total``); ``passages`` counts passages embedded and stored.
    """

    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    passages: int = 0
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def counts(self) -> dict[str, int]:
        return {"added": len(self.added), "updated": len(self.updated), "skipped": len(self.skipped),
                "failed": len(self.failed)}

    @property
    def overhead(self) -> float:
        """Seconds spent outside the embedder (chunking, SQL, FAISS, BM25, files)."""
        t = self.timings
        return t.get("total", 0.0) - t.get("embed", 0.0) - t.get("load", 0.0)


@dataclass(frozen=True)
class Progress:
    documents: int  # documents finished (stored, skipped or failed)
    passages: int  # passages embedded so far
    passages_total: int  # passages known so far (grows while reading ahead)


class Sink(Protocol):
    def existing_hashes(self, doc_ids: Sequence[str]) -> dict[str, str]: ...

    def commit(self, group: Sequence[Prepared]) -> None: ...


def document_hash(doc: Document) -> str:
    payload = json.dumps([doc.title, doc.source, doc.text, dict(doc.meta)], ensure_ascii=False, sort_keys=True,
                         default=str)
    return hashlib.sha256(payload.encode()).hexdigest()


def prepare_document(doc: Document) -> Document:
    """NFC-normalise a caller's document; give it a content id if it has none.

    Raises :class:`LoadError` (reported as a failed document) for empty text, an id over
    512 characters or metadata that is not JSON.
    """
    where = doc.source or str(doc.id)[:80] or "document"
    if not isinstance(doc.text, str) or not isinstance(doc.title, str):
        raise LoadError(where, "text and title must be strings")
    text, title = normalize_text(doc.text), normalize_text(doc.title).strip()
    if not text.strip():
        raise LoadError(where, "no text to index (empty document)")
    if len(str(doc.id)) > 512:
        raise LoadError(where, "document id longer than 512 characters")
    try:
        json.dumps(dict(doc.meta))
    except (TypeError, ValueError) as exc:
        raise LoadError(where, f"meta is not JSON-serialisable ({exc})") from None
    return Document(id=str(doc.id) or content_id(text, title), text=text, title=title, source=doc.source,
                    meta=dict(doc.meta))


class Pipeline:
    """One ingest run; :meth:`run` returns the :class:`IngestReport`."""

    def __init__(self, chunker: Chunker, embedder, sink: Sink, *, batch_size: int = 64,
                 lookahead_chars: int = 4_000_000, progress: Callable[[Progress], None] | None = None):
        self.chunker, self.embedder, self.sink = chunker, embedder, sink
        self.batch_size, self.lookahead = batch_size, lookahead_chars
        self.progress = progress or (lambda p: None)
        self.times = dict.fromkeys(("load", "chunk", "embed", "store"), 0.0)
        self.outcome: dict[str, list] = {"added": [], "updated": [], "skipped": [], "failed": []}
        self._seen: set[str] = set()
        self._docs_done = self._passages_done = self._passages_known = self._stored = 0

    def run(self, items: Iterable[Document | LoadError]) -> IngestReport:
        for window in self._windows(iter(items)):
            self._window(window)
        self.progress(Progress(self._docs_done, self._passages_done, self._passages_known))
        return IngestReport(**self.outcome, passages=self._stored, timings=dict(self.times))

    def _windows(self, items: Iterator[Document | LoadError]) -> Iterator[list[Document | LoadError]]:
        window: list[Document | LoadError] = []
        chars = 0
        while True:
            t = time.perf_counter()
            item = next(items, None)
            self.times["load"] += time.perf_counter() - t
            if item is None:
                break
            window.append(item)
            chars += len(item.text) if isinstance(item, Document) else 0
            if chars >= self.lookahead:
                yield window
                window, chars = [], 0
        if window:
            yield window

    def _fail(self, source: str, reason: str) -> None:
        self.outcome["failed"].append((source, reason))
        self._docs_done += 1

    def _accept(self, item: Document | LoadError) -> Document | None:
        if isinstance(item, LoadError):
            self._fail(item.source, item.reason)
            return None
        try:
            doc = prepare_document(item)
        except LoadError as exc:
            self._fail(exc.source, exc.reason)
            return None
        if doc.id in self._seen:
            self._fail(doc.source or doc.id, f"duplicate document id {doc.id!r} in this ingest; ignored")
            return None
        self._seen.add(doc.id)
        return doc

    def _window(self, window: list[Document | LoadError]) -> None:
        docs = [d for d in map(self._accept, window) if d is not None]
        existing = self.sink.existing_hashes([d.id for d in docs])
        todo = []
        for doc in docs:
            h = document_hash(doc)
            if existing.get(doc.id) == h:
                self.outcome["skipped"].append(doc.id)
                self._docs_done += 1
            else:
                todo.append((doc, h))
        t = time.perf_counter()
        chunked = self.chunker.chunk_many([d for d, _ in todo])
        self.times["chunk"] += time.perf_counter() - t
        self._passages_known += sum(len(c) for c in chunked)
        self._embed_and_commit([(d, h, c, d.id in existing) for (d, h), c in zip(todo, chunked)])

    def _embed_and_commit(self, todo: list[tuple[Document, str, list[Chunk], bool]]) -> None:
        texts = [self.chunker.embed_text(d.title, c.text) for d, _, cs, _ in todo for c in cs]
        vectors = np.empty((len(texts), self.embedder.dim), np.float32)
        ends = np.cumsum([len(cs) for _, _, cs, _ in todo], dtype=np.int64)
        done = 0  # documents of ``todo`` already committed
        for b in range(0, len(texts), self.batch_size):
            e = min(b + self.batch_size, len(texts))
            t = time.perf_counter()
            vectors[b:e] = self.embedder.embed_passages(texts[b:e])
            self.times["embed"] += time.perf_counter() - t
            self._passages_done += e - b
            ready = int(np.searchsorted(ends, e, side="right"))
            if ready > done:
                self._commit(todo, done, ready, vectors, ends)
                done = ready
            self.progress(Progress(self._docs_done, self._passages_done, self._passages_known))

    def _commit(self, todo, lo: int, hi: int, vectors: np.ndarray, ends: np.ndarray) -> None:
        group = []
        for i in range(lo, hi):
            doc, h, chunks, replaces = todo[i]
            a = int(ends[i - 1]) if i else 0
            group.append(Prepared(doc, h, chunks, vectors[a:int(ends[i])], replaces))
        t = time.perf_counter()
        self.sink.commit(group)
        self.times["store"] += time.perf_counter() - t
        for p in group:
            self.outcome["updated" if p.replaces else "added"].append(p.document.id)
        self._docs_done += len(group)
        self._stored += sum(len(p.chunks) for p in group)
