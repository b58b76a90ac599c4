"""The pipeline's sink: commit prepared documents to SQL, then to the in-memory indexes.

SQL first, in one transaction per group (a document is stored whole or not at all); the
indexes follow in memory and are written to their files when the ingest ends. If another
writer changed the collection in between, the indexes are reconciled with SQL instead.
"""

from __future__ import annotations

import time
from typing import Sequence

from sqlalchemy.orm import Session

from koqa.types import Prepared
from koqa.store import sqlstore as sql
from koqa.store.cache import IndexCache
from koqa.store.schema import CollectionRow, IndexMetaRow


class CollectionWriter:
    def __init__(self, session_factory, cache: IndexCache, coll: CollectionRow, dim: int):
        self._session: type[Session] = session_factory
        self.cache, self.coll, self.dim = cache, coll, dim
        self.times = {"index": 0.0, "save": 0.0}

    def existing_hashes(self, doc_ids: Sequence[str]) -> dict[str, str]:
        with self._session() as s:
            return sql.existing_hashes(s, self.coll.id, list(doc_ids))

    def commit(self, group: Sequence[Prepared]) -> None:
        with self.cache.lock, self._session() as s:
            with s.begin():
                removed, new_ids = sql.write_documents(s, self.coll.id, group)
                generation = sql.bump(s, self.coll.id)
            t = time.perf_counter()
            idx = self.cache.loaded(self.coll, s.get(IndexMetaRow, self.coll.id), self.dim)
            if idx.generation == generation - 1:  # nobody else wrote: apply our change
                idx.remove(removed)
                for p, ids in zip(group, new_ids):
                    idx.add(ids, p.vectors, [c.terms for c in p.chunks])
                idx.generation = generation
            else:  # another writer interleaved: SQL (with our commit) decides
                self.cache.reconcile(s, self.coll, idx)
            self.times["index"] += time.perf_counter() - t

    def save(self) -> None:
        """Write the collection's index files (atomically), once at the end of an ingest."""
        t = time.perf_counter()
        self.cache.save(self.coll.id)
        self.times["save"] += time.perf_counter() - t
