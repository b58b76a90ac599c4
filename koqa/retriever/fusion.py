"""Reciprocal rank fusion (Cormack et al., 2009) as a pure function.

Each item scores ``sum(w / (k + rank))`` over the rankings it appears in (rank is
1-based, ``w`` the ranking's weight, 1 unless given). Ties are broken by the best single
rank, then by first appearance.

>>> fused = reciprocal_rank_fusion({"dense": ["a", "b", "c"], "bm25": ["b", "d"]}, k=60)
>>> [(item, round(score, 5)) for item, score, _ in fused]
[('b', 0.03252), ('a', 0.01639), ('d', 0.01613), ('c', 0.01587)]
>>> fused[0][2]
{'dense': 2, 'bm25': 1}
"""

from __future__ import annotations

from typing import Hashable, Mapping, Sequence, TypeVar

T = TypeVar("T", bound=Hashable)


def reciprocal_rank_fusion(rankings: Mapping[str, Sequence[T]], k: int = 60, limit: int | None = None,
                           weights: Mapping[str, float] | None = None) -> list[tuple[T, float, dict[str, int]]]:
    """Fuse named rankings (best first) into ``[(item, score, {name: rank})]``, best first.

    A duplicate inside one ranking counts at its first (best) position only.
    """
    if k < 0:
        raise ValueError(f"k must be >= 0, got {k}")
    weights = weights or {}
    scores: dict[T, float] = {}
    ranks: dict[T, dict[str, int]] = {}
    order: dict[T, int] = {}
    for name, ranking in rankings.items():
        for rank, item in enumerate(ranking, 1):
            item_ranks = ranks.setdefault(item, {})
            if name in item_ranks:
                continue
            item_ranks[name] = rank
            scores[item] = scores.get(item, 0.0) + weights.get(name, 1.0) / (k + rank)
            order.setdefault(item, len(order))
    items = sorted(scores, key=lambda it: (-scores[it], min(ranks[it].values()), order[it]))
    if limit is not None:
        items = items[:limit]
    return [(it, scores[it], ranks[it]) for it in items]
