"""The query path: a question → dense (FAISS) and BM25 (Kiwi terms) search over one
collection of the store → fused, filtered :class:`~koqa.types.Hit` s.

>>> from koqa.ingest.embedders import FakeEmbedder
>>> from koqa.ingest.chunking import Chunker, RegexTokenizer
>>> from koqa.ingest.indexer import Indexer
>>> from koqa.store.documents import DocumentStore
>>> from koqa.types import Document
>>> import tempfile, pathlib
>>> tmp = pathlib.Path(tempfile.mkdtemp())
>>> store = DocumentStore.open(f"sqlite:///{tmp}/k.db", tmp / "idx")
>>> chunker = Chunker(RegexTokenizer())
>>> _ = Indexer(store, FakeEmbedder(), chunker).ingest("default", [Document(id="d1", text="세종대왕은 훈민정음을 창제하였다.")])
>>> HybridRetriever(store, FakeEmbedder(), chunker.analyzer).retrieve("훈민정음을 만든 사람", k=1)[0].passage.doc_id
'd1'
>>> store.close()
"""

from __future__ import annotations

from typing import Mapping

import numpy as np

from koqa.errors import InvalidInput
from koqa.retriever.base import Mode, check_mode
from koqa.retriever.search import search_indexes
from koqa.store import sqlstore as sql
from koqa.store.documents import DocumentStore, check_embedder
from koqa.store.filters import check_filters
from koqa.store.schema import IndexMetaRow
from koqa.text.kiwi import KiwiAnalyzer
from koqa.types import Hit

__all__ = ["HybridRetriever", "check_request"]


def check_request(query: object, k: object, mode: object, filters: object):
    """Refuse a bad query, ``k``, ``mode`` or ``filters`` (:class:`InvalidInput`); the checked filters."""
    if not isinstance(query, str) or not query.strip():
        raise InvalidInput("query", query, "must be a non-empty string")
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= 1000:
        raise InvalidInput("k", k, "must be an integer from 1 to 1000")
    check_mode(mode)
    return check_filters(filters)


class HybridRetriever:
    """Satisfies :class:`~koqa.retriever.base.Retriever` over ``store``.

    ``analyzer`` must be the one the passages' BM25 terms were made with (the chunker's);
    ``fusion_weights`` weighs dense and BM25 in hybrid RRF (default equal; on KorQuAD
    ``{"bm25": 2.0}`` raises recall@1, see bench/retrieval.py). Without an embedder only
    ``mode="bm25"`` works.
    """

    def __init__(self, store: DocumentStore, embedder=None, analyzer: KiwiAnalyzer | None = None, *,
                 fusion_weights: Mapping[str, float] | None = None):
        self.store, self.embedder = store, embedder
        self._analyzer = analyzer
        self.fusion_weights = dict(fusion_weights or {})

    @property
    def analyzer(self) -> KiwiAnalyzer:
        if self._analyzer is None:
            self._analyzer = KiwiAnalyzer()
        return self._analyzer

    def retrieve(self, query: str, k: int = 10, *, collection: str = "default", mode: Mode = "hybrid",
                 filters: Mapping | None = None, query_vector: np.ndarray | None = None) -> list[Hit]:
        """The ``k`` best passages for ``query``; ``Hit.scores`` has ``dense``/``bm25``(/``hybrid``).

        ``filters`` keeps only passages of matching documents (:mod:`koqa.store.filters`).
        ``query_vector`` (``embedder.embed_queries([query])[0]``, computed in a batch) skips
        embedding the query here; evaluation scripts use it.
        """
        filters = check_request(query, k, mode, filters)
        store = self.store
        with store.session() as s:
            coll = sql.get_collection(s, collection)
            meta = s.get(IndexMetaRow, coll.id)
            idx = store.indexes(s, coll, meta, self.embedder.dim if self.embedder else 1)
            allowed = None if filters is None else store.allowed_passages(s, coll, filters)
            if allowed is not None and not len(allowed):
                return []
            qvec = None
            if mode != "bm25" and len(idx.dense):
                if self.embedder is None:
                    raise InvalidInput("mode", mode, "needs an embedder; open the store with one or use mode='bm25'")
                check_embedder(coll.name, meta, self.embedder.name, self.embedder.dim)
                qvec = self.embedder.embed_queries([query])[0] if query_vector is None else query_vector
            terms = self.analyzer.terms(query) if mode != "dense" else []
            with store.lock:
                ranked = search_indexes(idx, qvec, terms, k, mode, weights=self.fusion_weights, allowed=allowed)
            passages = store.passages(s, coll.id, [r.passage_id for r in ranked])
        return [Hit(passages[r.passage_id], r.score, r.scores, r.ranks) for r in ranked if r.passage_id in passages]

    def check_query(self, collection: str, filters: Mapping | None = None) -> None:
        """Raise now the error ``retrieve`` would raise for ``collection`` or ``filters`` (no index is loaded).

        The CLI calls it before loading models, so a typo fails in a second instead of after them.
        """
        filters = check_filters(filters)
        with self.store.session() as s:
            coll = sql.get_collection(s, collection)
            if filters is not None:
                sql.filtered_passages(s, coll, filters)
