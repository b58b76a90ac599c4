"""A corpus: the store with its write path (:class:`~koqa.ingest.indexer.Indexer`) and its
query path (:class:`~koqa.retriever.hybrid.HybridRetriever`) sharing one embedder and chunker.

This is what the CLI, the API and most library users open.

>>> from koqa.ingest.embedders import FakeEmbedder
>>> from koqa.ingest.chunking import Chunker, RegexTokenizer
>>> from koqa.types import Document
>>> import tempfile, pathlib
>>> tmp = pathlib.Path(tempfile.mkdtemp())
>>> corpus = Corpus.open(f"sqlite:///{tmp}/k.db", tmp / "idx", embedder=FakeEmbedder(),
...                      chunker=Chunker(RegexTokenizer()))
>>> corpus.ingest("default", [Document(id="d1", text="세종대왕은 훈민정음을 창제하였다.", title="세종")]).counts
{'added': 1, 'updated': 0, 'skipped': 0, 'failed': 0}
>>> corpus.retrieve("훈민정음을 만든 사람", k=1)[0].passage.doc_id
'd1'
>>> corpus.close()
"""

from __future__ import annotations

from functools import cached_property
from typing import Mapping

from koqa.ingest.chunking import Chunker
from koqa.ingest.indexer import Indexer
from koqa.retriever.hybrid import HybridRetriever
from koqa.store.documents import DocumentStore

__all__ = ["Corpus"]


class Corpus(DocumentStore):
    """A :class:`DocumentStore` that also ingests and retrieves; satisfies
    :class:`~koqa.retriever.base.Retriever`.

    ``embedder=None`` opens it for storage and ``mode="bm25"`` retrieval only.
    """

    def __init__(self, engine, index_dir, *, embedder=None, chunker: Chunker | None = None,
                 fusion_weights: Mapping[str, float] | None = None):
        super().__init__(engine, index_dir)
        self.embedder, self._chunker, self._fusion_weights = embedder, chunker, fusion_weights

    @cached_property
    def indexer(self) -> Indexer:
        return Indexer(self, self.embedder, self._chunker)

    @property
    def chunker(self) -> Chunker:
        return self.indexer.chunker

    @cached_property
    def retriever(self) -> HybridRetriever:
        # BM25 terms of a query must come from the analyzer that made the passages' terms.
        analyzer = self._chunker.analyzer if self._chunker else None
        return HybridRetriever(self, self.embedder, analyzer, fusion_weights=self._fusion_weights)

    def warm_up(self) -> None:
        """Pay the lazy loads of a first query (Kiwi for BM25 terms) now."""
        self.retriever.analyzer.terms("준비")

    def ingest(self, collection, documents, **kwargs):
        """See :meth:`Indexer.ingest`."""
        return self.indexer.ingest(collection, documents, **kwargs)

    def ingest_paths(self, collection, paths, **kwargs):
        """See :meth:`Indexer.ingest_paths`."""
        return self.indexer.ingest_paths(collection, paths, **kwargs)

    def retrieve(self, query, k=10, **kwargs):
        """See :meth:`HybridRetriever.retrieve`."""
        return self.retriever.retrieve(query, k, **kwargs)

    def check_query(self, collection, filters=None) -> None:
        """See :meth:`HybridRetriever.check_query`."""
        self.retriever.check_query(collection, filters)
