"""Storage: collections, documents and passages in SQL (the truth) plus each collection's FAISS
and BM25 index files, the write path's sink and the consistency doctor.

Crash consistency: each group of documents is committed in one SQL transaction, with
its passages' vectors and terms, before the in-memory indexes change; index files are
replaced atomically at the end of each write. Whenever a collection's indexes are
loaded (or another process changed the collection, seen through its ``generation``),
they are reconciled with SQL by passage id. So after a ``kill -9`` at any point a
document is either wholly present (SQL committed: reconcile adds its vectors) or absent.

The write path (:class:`koqa.ingest.indexer.Indexer`) and the query path
(:class:`koqa.retriever.hybrid.HybridRetriever`) sit on top of this class;
:class:`koqa.pipeline.corpus.Corpus` puts the three together.

>>> import tempfile, pathlib
>>> tmp = pathlib.Path(tempfile.mkdtemp())
>>> store = DocumentStore.open(f"sqlite:///{tmp}/k.db", tmp / "idx")
>>> store.create_collection("규정")
>>> store.collections()
['default', '규정']
>>> store.close()
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from koqa.errors import IndexMismatch, InvalidInput, NotFound
from koqa.store import sqlstore as sql
from koqa.store.cache import FilterCache, IndexCache
from koqa.store.dense import KINDS
from koqa.store.indexes import CollectionIndexes
from koqa.store.schema import CollectionRow, DocumentRow, IndexMetaRow, PassageRow, make_engine
from koqa.store.writer import CollectionWriter
from koqa.types import Document, Passage

log = logging.getLogger(__name__)

__all__ = ["DocumentStore", "check_embedder"]


class DocumentStore:
    """Collections of documents and their passages, with each collection's search indexes."""

    def __init__(self, engine, index_dir: Path):
        self.engine, self.index_dir = engine, Path(index_dir)
        self._cache = IndexCache(self.index_dir)
        self._filters = FilterCache()
        self.lock = self._cache.lock  # guards every index access

    @classmethod
    def open(cls, database_url: str, index_dir: Path, **kwargs) -> "DocumentStore":
        """Open (creating tables, and the ``default`` collection, if needed); ``kwargs`` go to ``__init__``."""
        store = cls(make_engine(database_url), index_dir, **kwargs)
        try:
            store.create_collection("default", exist_ok=True)
        except IntegrityError:
            pass  # another process created it at the same moment
        return store

    @classmethod
    def from_settings(cls, settings, **kwargs) -> "DocumentStore":
        return cls.open(settings.database_url, settings.index_dir, **kwargs)

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def session(self) -> Session:
        return Session(self.engine, expire_on_commit=False)

    # collections ------------------------------------------------------------------
    def collections(self) -> list[str]:
        with self.session() as s:
            return [r.name for r in sql.list_collections(s)]

    def has_collection(self, name: str) -> bool:
        with self.session() as s:
            return s.scalar(select(CollectionRow.id).where(CollectionRow.name == name)) is not None

    def create_collection(self, name: str, *, index: str = "flat", exist_ok: bool = False) -> None:
        if index not in KINDS:
            raise InvalidInput("index", index, f"must be one of {', '.join(KINDS)}")
        with self.session() as s, s.begin():
            if exist_ok and s.scalar(select(CollectionRow.id).where(CollectionRow.name == name)) is not None:
                return
            sql.create_collection(s, name, index)

    def delete_collection(self, name: str) -> None:
        with self.lock, self.session() as s:
            with s.begin():
                row = sql.get_collection(s, name)
                sql.delete_collection(s, row)
            self._cache.drop(row.id)
            shutil.rmtree(self.index_dir / row.uid, ignore_errors=True)

    # the write path's sink ----------------------------------------------------------
    def writer(self, name: str, *, embedder: str, dim: int, chunker: Mapping, backend: str | None = None
               ) -> CollectionWriter:
        """A sink for collection ``name`` after checking (or, when it is empty, recording) the
        embedder and chunker settings its passages are indexed with."""
        coll = self.record_settings(name, embedder=embedder, dim=dim, chunker=chunker, backend=backend)
        with self.session() as s:  # load + reconcile now, so each commit only applies its own change
            self.indexes(s, coll, s.get(IndexMetaRow, coll.id), dim)
        return CollectionWriter(self.session, self._cache, coll, dim)

    def record_settings(self, name: str, *, embedder: str, dim: int, chunker: Mapping,
                        backend: str | None = None) -> CollectionRow:
        """Check the collection's recorded embedder and chunker against these (or record them
        when it is empty); :class:`~koqa.errors.IndexMismatch` when they differ."""
        with self.session() as s, s.begin():
            coll = sql.get_collection(s, name)
            meta = s.get(IndexMetaRow, coll.id)
            empty = sql.passage_count(s, coll.id) == 0
            if not empty:
                check_embedder(coll.name, meta, embedder, dim)
                if meta.chunker != chunker:
                    raise IndexMismatch(
                        f"collection {name!r} was chunked with {meta.chunker}; this ingest chunks with "
                        f"{chunker}. Use the same chunker settings or ingest into a new collection.")
            if empty and (meta.embedder, meta.dim) != (embedder, dim):
                self._cache.drop(coll.id)  # an empty collection may switch embedders
            meta.embedder, meta.dim, meta.chunker, meta.backend = embedder, dim, dict(chunker), backend
        return coll

    # the query path's reads -----------------------------------------------------------
    def indexes(self, s: Session, coll: CollectionRow, meta: IndexMetaRow, fallback_dim: int = 1) -> CollectionIndexes:
        """The collection's indexes, reconciled with SQL when another writer changed it."""
        return self._cache.fresh(s, coll, meta, fallback_dim)

    def allowed_passages(self, s: Session, coll: CollectionRow, filters: Mapping) -> np.ndarray:
        """Ids of the passages whose documents match checked ``filters`` (cached per generation)."""
        return self._filters.passages(s, coll, filters)

    # documents and passages -------------------------------------------------------
    def list_documents(self, collection: str, *, with_text: bool = False, limit: int | None = None,
                       offset: int = 0) -> list[Document]:
        """Documents ordered by id (``limit`` of them from ``offset``, or all); ``text`` is ``""`` unless
        ``with_text`` (it can be large).

        ``meta`` holds the document's own metadata plus ``passages``, ``chars`` and ``updated_at``.
        """
        with self.session() as s:
            coll = sql.get_collection(s, collection)
            cols = [DocumentRow.doc_id, DocumentRow.title, DocumentRow.source, DocumentRow.meta,
                    DocumentRow.n_passages, DocumentRow.n_chars, DocumentRow.updated_at]
            rows = s.execute(select(*cols, *([DocumentRow.text] if with_text else []))
                             .where(DocumentRow.collection_id == coll.id).order_by(DocumentRow.doc_id)
                             .offset(offset).limit(limit))
            return [Document(id=r.doc_id, text=r.text if with_text else "", title=r.title, source=r.source,
                             meta={**(r.meta or {}), "passages": r.n_passages, "chars": r.n_chars,
                                   "updated_at": r.updated_at.isoformat() if r.updated_at else None})
                    for r in rows]

    def get_document(self, collection: str, doc_id: str) -> Document:
        with self.session() as s:
            coll = sql.get_collection(s, collection)
            r = s.scalar(select(DocumentRow).where(DocumentRow.collection_id == coll.id, DocumentRow.doc_id == doc_id))
            if r is None:
                raise NotFound("document", doc_id, f"not in collection {collection!r}")
            return Document(id=r.doc_id, text=r.text, title=r.title, source=r.source, meta=dict(r.meta or {}))

    def delete_document(self, collection: str, doc_id: str) -> None:
        with self.lock, self.session() as s:
            with s.begin():
                coll = sql.get_collection(s, collection)
                removed = sql.delete_document(s, coll.id, doc_id)
                gen = sql.bump(s, coll.id)
            idx = self._cache.get(coll.id)
            if idx is not None:
                idx.remove(removed)
                idx.generation = gen if idx.generation == gen - 1 else -1
                self._cache.try_save(idx)

    def get_passage(self, collection: str, passage_id: str | int) -> Passage:
        with self.session() as s:
            coll = sql.get_collection(s, collection)
            try:
                pid = int(passage_id)
            except (TypeError, ValueError):
                raise NotFound("passage", str(passage_id)) from None
            found = self.passages(s, coll.id, [pid])
            if pid not in found:
                raise NotFound("passage", str(passage_id), f"not in collection {collection!r}")
            return found[pid]

    def passages(self, s: Session, collection_id: int, ids: Sequence[int]) -> dict[int, Passage]:
        rows = s.execute(select(PassageRow.id, PassageRow.idx, PassageRow.start, PassageRow.end, PassageRow.text,
                                DocumentRow.doc_id, DocumentRow.title, DocumentRow.source)
                         .join(DocumentRow, DocumentRow.id == PassageRow.document_id)
                         .where(PassageRow.collection_id == collection_id, PassageRow.id.in_(list(ids))))
        return {r.id: Passage(id=str(r.id), doc_id=r.doc_id, index=r.idx, start=r.start, end=r.end, text=r.text,
                              title=r.title, source=r.source) for r in rows}

    # maintenance ------------------------------------------------------------------
    def doctor(self, *, repair: bool = True, collection: str | None = None):
        """Check (and repair) SQL/index consistency; see :mod:`koqa.store.doctor`."""
        from koqa.store.doctor import run_doctor

        return run_doctor(self, repair=repair, collection=collection)

    def check_indexes(self, s: Session, coll: CollectionRow, repair: bool) -> list:
        """The doctor's findings about the collection's search indexes (here: its index files)."""
        from koqa.store.doctor import check_index_files

        return check_index_files(self, s, coll, repair)


def check_embedder(collection: str, meta: IndexMetaRow, name: str, dim: int) -> None:
    """Refuse an embedder other than the one the collection's vectors were made with."""
    if meta.embedder is not None and (meta.embedder, meta.dim) != (name, dim):
        raise IndexMismatch(
            f"collection {collection!r} was indexed with embedder {meta.embedder!r} (dim {meta.dim}), "
            f"but this store uses {name!r} (dim {dim}). Use --embedder {meta.embedder} "
            "or ingest into a new collection.")
