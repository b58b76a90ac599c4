"""The corpus in cluster mode: :class:`~koqa.pipeline.corpus.Corpus` over
:class:`~koqa.store.pgvector.PgVectorStore`, retrieving with :class:`~koqa.retriever.pg.PgRetriever`.

``Corpus.from_settings`` opens it when ``KOQA_VECTOR_STORE=pgvector``; every process (API
replicas, ingest workers) opened on the same database sees every commit at once.
"""

from __future__ import annotations

from functools import cached_property

from koqa.pipeline.corpus import Corpus
from koqa.retriever.pg import PgRetriever
from koqa.store.pgvector import PgVectorStore

__all__ = ["PgCorpus"]


class PgCorpus(Corpus, PgVectorStore):
    """``ef_search``: see :class:`~koqa.retriever.pg.PgRetriever` (``KOQA_PG_EF_SEARCH``)."""

    def __init__(self, engine, index_dir, *, ef_search: int = 100, **kwargs):
        super().__init__(engine, index_dir, **kwargs)
        self._ef_search = ef_search

    @cached_property
    def retriever(self) -> PgRetriever:
        analyzer = self._chunker.analyzer if self._chunker else None
        return PgRetriever(self, self.embedder, analyzer, fusion_weights=self._fusion_weights,
                           ef_search=self._ef_search)
