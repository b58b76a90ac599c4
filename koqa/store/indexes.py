"""The per-collection index files (FAISS + BM25) and their reconciliation with SQL.

SQL is the source of truth; the files in ``<index_dir>/<collection uid>/`` are caches.
On load, the ids in each file are compared with the passage ids in SQL: ids SQL no
longer has are removed, ids it has and the file lacks are added from the vectors and
terms stored in SQL (no re-embedding). A missing or unreadable file is rebuilt the same
way. Since passage ids are never reused, equal id sets mean equal contents.

>>> from koqa.store.schema import make_engine
>>> from sqlalchemy.orm import Session
>>> import tempfile, pathlib
>>> idx = CollectionIndexes(pathlib.Path(tempfile.mkdtemp()), dim=4)
>>> with Session(make_engine("sqlite://")) as s:
...     idx.reconcile(s, collection_id=1)
ReconcileResult(dense_added=0, dense_removed=0, bm25_added=0, bm25_removed=0, rebuilt=[])
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from koqa.store.bm25 import BM25Index
from koqa.store.dense import DenseIndex
from koqa.store.schema import PassageRow

log = logging.getLogger(__name__)
DENSE_FILE, BM25_FILE = "dense.faiss", "bm25.npz"
_FETCH = 5000  # passages per SQL round trip when rebuilding


@dataclass(frozen=True)
class ReconcileResult:
    dense_added: int = 0
    dense_removed: int = 0
    bm25_added: int = 0
    bm25_removed: int = 0
    rebuilt: list[str] = field(default_factory=list)  # files that were missing or unreadable

    @property
    def changed(self) -> bool:
        return bool(self.dense_added or self.dense_removed or self.bm25_added or self.bm25_removed or self.rebuilt)


class CollectionIndexes:
    """A collection's dense and BM25 indexes, kept in memory, saved atomically."""

    def __init__(self, folder: Path, dim: int, kind: str = "flat"):
        self.folder, self.dim, self.kind = folder, dim, kind
        self.dense = DenseIndex(dim, kind)
        self.bm25 = BM25Index()
        self.generation = -1  # the SQL generation these indexes reflect; -1 = not yet checked
        self._unreadable: list[str] = []

    @classmethod
    def load(cls, folder: Path, dim: int, kind: str = "flat") -> "CollectionIndexes":
        """Load the files if present; unreadable ones start empty and are rebuilt by reconcile."""
        out = cls(folder, dim, kind)
        dense_path, bm25_path = folder / DENSE_FILE, folder / BM25_FILE
        if dense_path.exists():
            try:
                out.dense = DenseIndex.load(dense_path, dim, kind)
            except Exception as exc:  # faiss raises RuntimeError, numpy ValueError on garbage
                log.warning("unreadable %s (%s); rebuilding from SQL", dense_path, exc)
                out._unreadable.append(DENSE_FILE)
        if bm25_path.exists():
            try:
                out.bm25 = BM25Index.load(bm25_path)
            except Exception as exc:
                log.warning("unreadable %s (%s); rebuilding from SQL", bm25_path, exc)
                out._unreadable.append(BM25_FILE)
        return out

    def add(self, ids: Sequence[int], vectors: np.ndarray, terms: Iterable[Sequence[str]]) -> None:
        self.dense.add(ids, vectors)
        self.bm25.add(ids, terms)

    def remove(self, ids: Sequence[int]) -> None:
        if len(ids):
            self.dense.remove(ids)
            self.bm25.remove(ids)

    def save(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        self.dense.save(self.folder / DENSE_FILE)
        self.bm25.save(self.folder / BM25_FILE)

    def reconcile(self, session: Session, collection_id: int) -> ReconcileResult:
        """Make both indexes hold exactly the passages SQL holds for the collection."""
        sql_ids = np.fromiter(session.scalars(select(PassageRow.id).where(PassageRow.collection_id == collection_id)),
                              np.int64)
        counts = []
        for index, with_vectors in ((self.dense, True), (self.bm25, False)):
            have = index.ids
            extra = np.setdiff1d(have, sql_ids)
            missing = np.setdiff1d(sql_ids, have)
            if len(extra):
                index.remove(extra.tolist())
            for ids, vectors, terms in _fetch(session, missing.tolist(), self.dim):
                if with_vectors:
                    index.add(ids, vectors)
                else:
                    index.add(ids, terms)
            counts += [len(missing), len(extra)]
        rebuilt, self._unreadable = self._unreadable, []
        return ReconcileResult(counts[0], counts[1], counts[2], counts[3], rebuilt)

    def rebuild(self, session: Session, collection_id: int) -> ReconcileResult:
        """Throw the in-memory indexes away and rebuild both from SQL."""
        self.dense, self.bm25 = DenseIndex(self.dim, self.kind), BM25Index()
        result = self.reconcile(session, collection_id)
        return ReconcileResult(result.dense_added, 0, result.bm25_added, 0, [DENSE_FILE, BM25_FILE])


def _fetch(session: Session, ids: list[int], dim: int):
    """Yield ``(ids, vectors, terms)`` for passage ids, a few thousand at a time."""
    for i in range(0, len(ids), _FETCH):
        part = ids[i:i + _FETCH]
        rows = session.execute(select(PassageRow.id, PassageRow.vector, PassageRow.terms)
                               .where(PassageRow.id.in_(part)).order_by(PassageRow.id)).all()
        vectors = np.frombuffer(b"".join(r.vector for r in rows), np.float32).reshape(len(rows), dim)
        yield [r.id for r in rows], vectors, [r.terms for r in rows]
