"""Dense, BM25 and hybrid (RRF) search over one collection's in-memory indexes.

Hybrid fuses the top ``depth`` of each retriever with reciprocal rank fusion (k=60).
Every result carries the score of each retriever that can score it: the dense cosine
is computed from the stored vector even for passages only BM25 found, and vice versa.

>>> import numpy as np, tempfile, pathlib
>>> from koqa.store.indexes import CollectionIndexes
>>> idx = CollectionIndexes(pathlib.Path(tempfile.mkdtemp()), dim=2)
>>> idx.add([1, 2], np.array([[1, 0], [0, 1]], np.float32), [["세종"], ["이순신"]])
>>> [(r.passage_id, sorted(r.scores)) for r in search_indexes(idx, np.array([0, 1], np.float32), ["세종"], 2, "hybrid")]
[(1, ['bm25', 'dense', 'hybrid']), (2, ['bm25', 'dense', 'hybrid'])]
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np

from koqa.store.bm25 import top_k
from koqa.retriever.fusion import reciprocal_rank_fusion
from koqa.store.indexes import CollectionIndexes

RRF_K = 60
FUSION_DEPTH = 100


@dataclass(frozen=True)
class Ranked:
    passage_id: int
    score: float
    scores: dict[str, float] = field(default_factory=dict)
    ranks: dict[str, int] = field(default_factory=dict)


def search_indexes(idx: CollectionIndexes, qvec: np.ndarray | None, terms: Sequence[str], k: int, mode: str,
                   depth: int = FUSION_DEPTH, weights: Mapping[str, float] | None = None,
                   allowed: np.ndarray | None = None) -> list[Ranked]:
    """Rank passages by ``mode``; ``qvec`` may be None (no dense), ``terms`` empty (no BM25).

    ``weights`` weighs the retrievers in the fusion (default: equal); ``allowed`` (passage ids)
    restricts the results to those passages (BM25 statistics stay those of the whole collection).
    """
    depth = max(k, depth) if mode == "hybrid" else k
    dense = idx.dense.search(qvec, depth, allowed) if qvec is not None and mode != "bm25" else []
    bm25_all = idx.bm25.score_all(terms) if terms and mode != "dense" else None
    bm25 = []
    if bm25_all is not None:
        ranked = bm25_all if allowed is None else np.where(np.isin(idx.bm25.ids, allowed), bm25_all, 0.0)
        bm25 = top_k(idx.bm25.ids, ranked, depth)
    rankings = {"dense": [i for i, _ in dense], "bm25": [i for i, _ in bm25]}
    if mode == "hybrid":
        fused = reciprocal_rank_fusion(rankings, k=RRF_K, limit=k, weights=weights)
        order = [(pid, score) for pid, score, _ in fused]
    else:
        order = (dense if mode == "dense" else bm25)[:k]
    dense_of, rank_of = dict(dense), {name: {p: r for r, p in enumerate(ids, 1)} for name, ids in rankings.items()}
    out = []
    for pid, score in order:
        scores: dict[str, float] = {}
        d = dense_of.get(pid)
        if d is None and qvec is not None:
            d = _dense_score(idx, pid, qvec)
        if d is not None:
            scores["dense"] = d
        if bm25_all is not None and (pos := idx.bm25.position(pid)) is not None:
            scores["bm25"] = float(bm25_all[pos])
        if mode == "hybrid":
            scores["hybrid"] = score
        ranks = {name: r[pid] for name, r in rank_of.items() if pid in r}
        out.append(Ranked(pid, float(score), scores, ranks))
    return out


def _dense_score(idx: CollectionIndexes, pid: int, qvec: np.ndarray) -> float | None:
    try:
        return float(idx.dense.vectors([pid])[0] @ qvec)
    except RuntimeError:  # id missing from the dense index (cannot happen after reconcile)
        return None
