"""An incremental BM25 index over pre-analysed terms, persisted as one ``.npz`` file.

Postings are kept as flat numpy arrays (term column, row, term frequency) sorted by
term, so adding or removing passages never needs a full re-index and a query touches
only the postings of its terms. Scoring is Okapi BM25 with Lucene's non-negative idf
``log(1 + (N - df + 0.5) / (df + 0.5))``, ``k1 = 1.2``, ``b = 0.75``.

>>> idx = BM25Index()
>>> idx.add([10, 11, 12], [["세종", "훈민정음"], ["이순신", "거북선"], ["세종", "집현전"]])
>>> [i for i, _ in idx.search(["훈민정음", "세종"], k=2)]
[10, 12]
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from koqa.store.files import atomic_write


class BM25Index:
    def __init__(self, k1: float = 1.2, b: float = 0.75):
        self.k1, self.b = k1, b
        self.ids = np.zeros(0, np.int64)
        self._len = np.zeros(0, np.float32)
        self._vocab: dict[str, int] = {}
        self._col = np.zeros(0, np.int32)
        self._row = np.zeros(0, np.int32)
        self._tf = np.zeros(0, np.float32)
        self._sorted = True
        self._positions: dict[int, int] | None = None

    def __len__(self) -> int:
        return len(self.ids)

    def add(self, ids: Sequence[int], term_lists: Iterable[Sequence[str]]) -> None:
        """Add passages (ids must be new) with their analysed terms."""
        cols, rows, tfs, lens = [], [], [], []
        base = len(self.ids)
        for r, terms in enumerate(term_lists):
            counts: dict[int, int] = {}
            for t in terms:
                c = self._vocab.setdefault(t, len(self._vocab))
                counts[c] = counts.get(c, 0) + 1
            cols.extend(counts)
            rows.extend([base + r] * len(counts))
            tfs.extend(counts.values())
            lens.append(len(terms))
        if len(lens) != len(ids):
            raise ValueError(f"{len(ids)} ids but {len(lens)} term lists")
        self.ids = np.concatenate([self.ids, np.asarray(ids, np.int64)])
        self._len = np.concatenate([self._len, np.asarray(lens, np.float32)])
        self._col = np.concatenate([self._col, np.asarray(cols, np.int32)])
        self._row = np.concatenate([self._row, np.asarray(rows, np.int32)])
        self._tf = np.concatenate([self._tf, np.asarray(tfs, np.float32)])
        self._sorted = False
        self._positions = None

    def remove(self, ids: Iterable[int]) -> None:
        drop = np.isin(self.ids, np.fromiter(ids, np.int64))
        if not drop.any():
            return
        keep = ~drop
        new_row = np.cumsum(keep) - 1
        post_keep = keep[self._row]
        self._col, self._tf = self._col[post_keep], self._tf[post_keep]
        self._row = new_row[self._row[post_keep]].astype(np.int32)
        self.ids, self._len = self.ids[keep], self._len[keep]
        self._positions = None

    def position(self, passage_id: int) -> int | None:
        """Row of ``passage_id`` in :attr:`ids` / :meth:`score_all`, or None."""
        if self._positions is None:
            self._positions = {int(i): r for r, i in enumerate(self.ids)}
        return self._positions.get(int(passage_id))

    def length(self, passage_id: int) -> int | None:
        """Number of terms indexed for ``passage_id`` (None if absent)."""
        pos = self.position(passage_id)
        return None if pos is None else int(self._len[pos])

    def _ensure_sorted(self) -> None:
        if not self._sorted:
            order = np.argsort(self._col, kind="stable")
            self._col, self._row, self._tf = self._col[order], self._row[order], self._tf[order]
            self._sorted = True

    def score_all(self, terms: Sequence[str]) -> np.ndarray:
        """BM25 score of every passage (aligned with :attr:`ids`) for the query terms."""
        scores = np.zeros(len(self.ids), np.float32)
        if not len(self.ids):
            return scores
        self._ensure_sorted()
        n, avg = len(self.ids), max(float(self._len.mean()), 1e-9)
        for t in dict.fromkeys(terms):
            c = self._vocab.get(t)
            if c is None:
                continue
            lo, hi = np.searchsorted(self._col, c, "left"), np.searchsorted(self._col, c, "right")
            if hi == lo:
                continue
            rows, tf = self._row[lo:hi], self._tf[lo:hi]
            idf = np.log1p((n - (hi - lo) + 0.5) / ((hi - lo) + 0.5))
            norm = self.k1 * (1 - self.b + self.b * self._len[rows] / avg)
            scores[rows] += idf * tf * (self.k1 + 1) / (tf + norm)
        return scores

    def search(self, terms: Sequence[str], k: int) -> list[tuple[int, float]]:
        """The ``k`` best passages with a positive score, best first."""
        return top_k(self.ids, self.score_all(terms), k)

    def save(self, path: Path) -> None:
        """Write atomically (temp file, fsync, rename)."""
        self._ensure_sorted()
        vocab = np.array(sorted(self._vocab, key=self._vocab.__getitem__), dtype=str)

        def write(f):
            np.savez(f, ids=self.ids, len=self._len, col=self._col, row=self._row, tf=self._tf,
                     vocab=vocab, params=np.array([self.k1, self.b]))

        atomic_write(path, write)

    @classmethod
    def load(cls, path: Path) -> "BM25Index":
        with np.load(path, allow_pickle=False) as z:
            k1, b = (float(x) for x in z["params"])
            idx = cls(k1, b)
            idx.ids, idx._len = z["ids"].astype(np.int64), z["len"].astype(np.float32)
            idx._col, idx._row, idx._tf = z["col"].astype(np.int32), z["row"].astype(np.int32), z["tf"]
            idx._vocab = {str(t): i for i, t in enumerate(z["vocab"].tolist())}
        if len(idx._row) and (idx._row.max() >= len(idx.ids) or idx._col.max() >= len(idx._vocab)):
            raise ValueError(f"corrupt BM25 index {path}")
        return idx



def top_k(ids: np.ndarray, scores: np.ndarray, k: int) -> list[tuple[int, float]]:
    """The ``k`` best positive scores as ``(id, score)``, best first (ties: lower id first)."""
    if k <= 0:
        return []
    hits = np.flatnonzero(scores > 0)
    if len(hits) > k:
        hits = hits[np.argpartition(-scores[hits], k - 1)[:k]]
    hits = hits[np.lexsort((ids[hits], -scores[hits]))]
    return [(int(ids[h]), float(scores[h])) for h in hits]
