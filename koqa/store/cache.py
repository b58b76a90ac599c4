"""The in-memory indexes of one store's collections, kept in step with SQL.

Indexes are loaded from their files on first use and reconciled with SQL whenever the
collection's ``generation`` in SQL differs from the one they reflect (another process, or
a crash, changed SQL). One re-entrant lock guards every index access of the store.
:class:`FilterCache` keeps the passage ids of recent filters under the same generation rule.

>>> import tempfile, pathlib
>>> cache = IndexCache(pathlib.Path(tempfile.mkdtemp()))
>>> cache.get(1) is None
True
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from pathlib import Path

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from koqa.store import sqlstore as sql
from koqa.store.filters import Filters
from koqa.store.indexes import CollectionIndexes
from koqa.store.schema import CollectionRow, IndexMetaRow

log = logging.getLogger(__name__)


class IndexCache:
    def __init__(self, index_dir: Path):
        self.index_dir = Path(index_dir)
        self.lock = threading.RLock()
        self._indexes: dict[int, CollectionIndexes] = {}

    def get(self, collection_id: int) -> CollectionIndexes | None:
        return self._indexes.get(collection_id)

    def drop(self, collection_id: int) -> None:
        with self.lock:
            self._indexes.pop(collection_id, None)

    def loaded(self, coll: CollectionRow, meta: IndexMetaRow, fallback_dim: int) -> CollectionIndexes:
        """The collection's indexes as last loaded or updated (not yet checked against SQL)."""
        with self.lock:
            idx = self._indexes.get(coll.id)
            dim = meta.dim or fallback_dim
            if idx is None or idx.dim != dim or idx.kind != meta.index_kind:
                idx = CollectionIndexes.load(self.index_dir / coll.uid, dim, meta.index_kind)
                self._indexes[coll.id] = idx
            return idx

    def fresh(self, s: Session, coll: CollectionRow, meta: IndexMetaRow, fallback_dim: int) -> CollectionIndexes:
        """The collection's indexes, reconciled with SQL if SQL changed since they were checked."""
        with self.lock:
            idx = self.loaded(coll, meta, fallback_dim)
            if idx.generation != coll.generation:
                self.reconcile(s, coll, idx)
            return idx

    def reconcile(self, s: Session, coll: CollectionRow, idx: CollectionIndexes) -> None:
        with self.lock:
            generation = s.scalar(select(CollectionRow.generation).where(CollectionRow.id == coll.id))
            result = idx.reconcile(s, coll.id)
            idx.generation = generation
            if result.changed:
                log.info("collection %s: indexes reconciled with SQL: %s", coll.name, result)
                self.try_save(idx)

    def try_save(self, idx: CollectionIndexes) -> None:
        try:
            idx.save()
        except OSError as exc:  # a read-only index folder: the in-memory indexes are still right
            log.warning("could not save indexes in %s: %s", idx.folder, exc)

    def save(self, collection_id: int) -> None:
        with self.lock:
            idx = self._indexes.get(collection_id)
            if idx is not None:
                idx.save()


class FilterCache:
    """The allowed passage ids of the last ``size`` filters, per collection generation.

    Matching a filter reads every document row of the collection; a chatbot that always
    filters by, say, department would pay that on every question. Every committed change
    bumps the collection's generation, so an entry can never outlive the rows it was read from.
    """

    def __init__(self, size: int = 16):
        self.size = size
        self._items: OrderedDict[tuple, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def passages(self, s: Session, coll: CollectionRow, filters: Filters) -> np.ndarray:
        key = (coll.id, coll.generation, frozenset(filters.items()))
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        ids = sql.filtered_passages(s, coll, filters)  # outside the lock: a slow scan must not block hits
        ids.setflags(write=False)  # shared by every query with these filters
        with self._lock:
            self._items[key] = ids
            while len(self._items) > self.size:
                self._items.popitem(last=False)
        return ids
