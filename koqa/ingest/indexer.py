"""The write path: documents → chunks → vectors → a collection of the store.

>>> from koqa.ingest.embedders import FakeEmbedder
>>> from koqa.ingest.chunking import Chunker, RegexTokenizer
>>> from koqa.store.documents import DocumentStore
>>> from koqa.types import Document
>>> import tempfile, pathlib
>>> tmp = pathlib.Path(tempfile.mkdtemp())
>>> store = DocumentStore.open(f"sqlite:///{tmp}/k.db", tmp / "idx")
>>> indexer = Indexer(store, FakeEmbedder(), Chunker(RegexTokenizer()))
>>> indexer.ingest("역사", [Document(id="d1", text="세종대왕은 훈민정음을 창제하였다.")], create=True).counts
{'added': 1, 'updated': 0, 'skipped': 0, 'failed': 0}
>>> indexer.ingest("역사", [Document(id="d1", text="세종대왕은 훈민정음을 창제하였다.")]).counts["skipped"]
1
>>> store.close()
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Callable, Iterable, Sequence

from koqa.errors import InvalidInput
from koqa.ingest.chunking import Chunker
from koqa.ingest.loaders import LoadError, load_documents
from koqa.ingest.pipeline import IngestReport, Pipeline, Progress
from koqa.store.documents import DocumentStore
from koqa.types import Document

__all__ = ["Indexer"]


class Indexer:
    """Ingests into ``store`` with ``embedder`` and ``chunker`` (by default sized with the embedder's tokenizer).

    A collection records the embedder and chunker settings of its first ingest and refuses
    others later (:class:`koqa.errors.IndexMismatch`).
    """

    def __init__(self, store: DocumentStore, embedder, chunker: Chunker | None = None):
        if embedder is None:
            raise InvalidInput("embedder", None, "ingest needs an embedder")
        self.store, self.embedder = store, embedder
        self._chunker = chunker

    @property
    def chunker(self) -> Chunker:
        if self._chunker is None:
            tok = getattr(self.embedder, "tokenizer", None)
            self._chunker = Chunker(tok) if tok is not None else Chunker.default()
        return self._chunker

    def ingest(self, collection: str, documents: Iterable[Document], *, create: bool = False,
               progress: Callable[[Progress], None] | None = None, batch_size: int = 64) -> IngestReport:
        """Add new, replace changed and skip unchanged documents (by id and content hash).

        ``create=True`` creates a missing collection (and removes it again if the ingest
        raises or stores nothing because every document failed); otherwise a missing
        collection is :class:`~koqa.errors.NotFound`.
        """
        created = create and not self.store.has_collection(collection)
        if created:
            self.store.create_collection(collection, exist_ok=True)
        try:
            report = self._run(collection, documents, progress, batch_size)
        except BaseException:
            if created:
                self._drop_if_empty(collection)
            raise
        if created and report.failed and not (report.added or report.updated or report.skipped):
            self._drop_if_empty(collection)
        return report

    def ingest_paths(self, collection: str, paths: Sequence[Path], *, create: bool = False,
                     progress: Callable[[Progress], None] | None = None, batch_size: int = 64) -> IngestReport:
        """Load files/directories and ingest them; unreadable files go to ``failed``."""
        return self.ingest(collection, load_documents([Path(p) for p in paths]), create=create,
                           progress=progress, batch_size=batch_size)

    def _run(self, collection: str, items: Iterable[Document | LoadError], progress, batch_size) -> IngestReport:
        started = time.perf_counter()
        emb, chunker = self.embedder, self.chunker
        sink = self.store.writer(collection, embedder=emb.name, dim=emb.dim, chunker=chunker.settings,
                                 backend=getattr(emb, "backend", None))
        pipeline = Pipeline(chunker, emb, sink, batch_size=batch_size, progress=progress)
        try:
            report = pipeline.run(items)
        finally:
            sink.save()
        timings = {**report.timings, **sink.times, "total": time.perf_counter() - started}
        return replace(report, timings=timings)

    def _drop_if_empty(self, collection: str) -> None:
        """Undo a collection this ingest created; one another writer filled meanwhile stays."""
        if not any(True for _ in self.store.list_documents(collection, limit=1)):
            self.store.delete_collection(collection)
