"""Retrieval: hybrid dense (FAISS) + BM25 (Kiwi terms) search over the store, fused by RRF.

``from koqa.retriever import HybridRetriever`` works; it (SQLAlchemy, FAISS) is only
imported when asked for, so importing the contracts in :mod:`koqa.retriever.base` stays cheap.
"""

from koqa.retriever.base import MODES, Embedder, Mode, Retriever
from koqa.retriever.fusion import reciprocal_rank_fusion

__all__ = ["HybridRetriever", "Embedder", "MODES", "Mode", "Retriever", "reciprocal_rank_fusion"]


def __getattr__(name: str):
    if name == "HybridRetriever":
        from koqa.retriever.hybrid import HybridRetriever

        return HybridRetriever
    raise AttributeError(f"module 'koqa.retriever' has no attribute {name!r}")
