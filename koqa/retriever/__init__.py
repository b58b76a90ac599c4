"""Retrieval: the SQL-backed document store with FAISS (dense) and Kiwi BM25 indexes, fused by RRF.

``from koqa.retriever import DocumentStore`` works; the store (SQLAlchemy, FAISS) is only
imported when asked for, so importing the contracts in :mod:`koqa.retriever.base` stays cheap.
"""

from koqa.retriever.base import Embedder, Mode, Retriever
from koqa.retriever.fusion import reciprocal_rank_fusion

__all__ = ["DocumentStore", "Embedder", "Mode", "Retriever", "reciprocal_rank_fusion"]


def __getattr__(name: str):
    if name == "DocumentStore":
        from koqa.store.documents import DocumentStore

        return DocumentStore
    raise AttributeError(f"module 'koqa.retriever' has no attribute {name!r}")
