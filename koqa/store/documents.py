"""The document store: SQL truth + per-collection FAISS and BM25 indexes + hybrid retrieval.

Crash consistency: each group of documents is committed in one SQL transaction, with
its passages' vectors and terms, before the in-memory indexes change; index files are
replaced atomically at the end of each write. Whenever a collection's indexes are
loaded (or another process changed the collection, seen through its ``generation``),
they are reconciled with SQL by passage id. So after a ``kill -9`` at any point a
document is either wholly present (SQL committed: reconcile adds its vectors) or absent.

>>> from koqa.ingest.embedders import FakeEmbedder
>>> from koqa.ingest.chunking import Chunker, RegexTokenizer
>>> from koqa.types import Document
>>> import tempfile, pathlib
>>> tmp = pathlib.Path(tempfile.mkdtemp())
>>> store = DocumentStore.open(f"sqlite:///{tmp}/k.db", tmp / "idx", FakeEmbedder(), Chunker(RegexTokenizer()))
>>> store.ingest("default", [Document(id="d1", text="세종대왕은 훈민정음을 창제하였다.", title="세종")]).counts
{'added': 1, 'updated': 0, 'skipped': 0, 'failed': 0}
>>> store.retrieve("훈민정음을 만든 사람", k=1)[0].passage.doc_id
'd1'
>>> store.close()
"""

from __future__ import annotations

import logging
import shutil
import time
from dataclasses import replace
from pathlib import Path
from typing import Callable, Iterable, Mapping, Sequence

import numpy as np
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from koqa.errors import IndexMismatch, InvalidInput, NotFound
from koqa.ingest.chunking import Chunker
from koqa.ingest.loaders import LoadError, load_documents
from koqa.text.kiwi import KiwiAnalyzer
from koqa.ingest.pipeline import IngestReport, Pipeline, Progress
from koqa.store import sqlstore as sql
from koqa.retriever.base import Mode
from koqa.store.cache import FilterCache, IndexCache
from koqa.store.dense import KINDS
from koqa.store.filters import check_filters
from koqa.store.indexes import CollectionIndexes
from koqa.store.schema import CollectionRow, DocumentRow, IndexMetaRow, PassageRow, make_engine
from koqa.retriever.search import search_indexes
from koqa.store.writer import CollectionWriter
from koqa.types import Document, Hit, Passage

log = logging.getLogger(__name__)
MODES = ("hybrid", "dense", "bm25")

__all__ = ["DocumentStore", "IngestReport", "Progress"]


class DocumentStore:
    """Collections of documents with hybrid retrieval; satisfies :class:`~koqa.retriever.base.Retriever`."""

    def __init__(self, engine, index_dir: Path, embedder=None, chunker: Chunker | None = None, *,
                 fusion_weights: Mapping[str, float] | None = None):
        self.engine, self.index_dir, self.embedder = engine, Path(index_dir), embedder
        self.fusion_weights = dict(fusion_weights or {})  # e.g. {"bm25": 2.0}; equal when empty
        self._chunker = chunker
        self._analyzer = chunker.analyzer if chunker else None
        self._cache = IndexCache(self.index_dir)
        self._filters = FilterCache()
        self._lock = self._cache.lock  # guards every index access

    @classmethod
    def open(cls, database_url: str, index_dir: Path, embedder=None, chunker: Chunker | None = None, *,
             fusion_weights: Mapping[str, float] | None = None) -> "DocumentStore":
        """Open (creating tables, and the ``default`` collection, if needed).

        ``fusion_weights`` weighs dense and BM25 in hybrid RRF (default equal; on KorQuAD
        ``{"bm25": 2.0}`` raises recall@1, see bench/retrieval.py).
        """
        store = cls(make_engine(database_url), index_dir, embedder, chunker, fusion_weights=fusion_weights)
        try:
            store.create_collection("default", exist_ok=True)
        except IntegrityError:
            pass  # another process created it at the same moment
        return store

    @classmethod
    def from_settings(cls, settings, embedder=None, chunker: Chunker | None = None) -> "DocumentStore":
        return cls.open(settings.database_url, settings.index_dir, embedder, chunker)

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> "DocumentStore":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _session(self) -> Session:
        return Session(self.engine, expire_on_commit=False)

    @property
    def chunker(self) -> Chunker:
        if self._chunker is None:
            tok = getattr(self.embedder, "tokenizer", None)
            self._chunker = Chunker(tok) if tok is not None else Chunker.default()
            self._analyzer = self._analyzer or self._chunker.analyzer
        return self._chunker

    @property
    def analyzer(self) -> KiwiAnalyzer:
        if self._analyzer is None:
            self._analyzer = KiwiAnalyzer()
        return self._analyzer

    # collections ------------------------------------------------------------------
    def collections(self) -> list[str]:
        with self._session() as s:
            return [r.name for r in sql.list_collections(s)]

    def create_collection(self, name: str, *, index: str = "flat", exist_ok: bool = False) -> None:
        if index not in KINDS:
            raise InvalidInput("index", index, f"must be one of {', '.join(KINDS)}")
        with self._session() as s, s.begin():
            if exist_ok and s.scalar(select(CollectionRow.id).where(CollectionRow.name == name)) is not None:
                return
            sql.create_collection(s, name, index)

    def delete_collection(self, name: str) -> None:
        with self._lock, self._session() as s:
            with s.begin():
                row = sql.get_collection(s, name)
                sql.delete_collection(s, row)
            self._cache.drop(row.id)
            shutil.rmtree(self.index_dir / row.uid, ignore_errors=True)

    # ingest -----------------------------------------------------------------------
    def ingest(self, collection: str, documents: Iterable[Document], *, create: bool = False,
               progress: Callable[[Progress], None] | None = None, batch_size: int = 64) -> IngestReport:
        """Add new, replace changed and skip unchanged documents (by id and content hash).

        ``create=True`` creates a missing collection; otherwise it is :class:`NotFound`.
        """
        return self._ingest(collection, documents, create, progress, batch_size)

    def ingest_paths(self, collection: str, paths: Sequence[Path], *, create: bool = False,
                     progress: Callable[[Progress], None] | None = None, batch_size: int = 64) -> IngestReport:
        """Load files/directories and ingest them; unreadable files go to ``failed``."""
        return self._ingest(collection, load_documents([Path(p) for p in paths]), create, progress, batch_size)

    def _ingest(self, collection, items: Iterable[Document | LoadError], create, progress, batch_size) -> IngestReport:
        started = time.perf_counter()
        if self.embedder is None:
            raise InvalidInput("embedder", None, "ingest needs an embedder; open the store with one")
        if create:
            self.create_collection(collection, exist_ok=True)
        coll = self._prepare_ingest(collection)
        with self._session() as s:  # load + reconcile now, so each commit only applies its own change
            self._fresh_indexes(s, coll, s.get(IndexMetaRow, coll.id))
        sink = CollectionWriter(self._session, self._cache, coll, self.embedder.dim)
        pipeline = Pipeline(self.chunker, self.embedder, sink, batch_size=batch_size, progress=progress)
        try:
            report = pipeline.run(items)
        finally:
            t = time.perf_counter()
            self._cache.save(coll.id)
            sink.times["save"] = time.perf_counter() - t
        timings = {**report.timings, **sink.times, "total": time.perf_counter() - started}
        return replace(report, timings=timings)

    def _prepare_ingest(self, name: str) -> CollectionRow:
        """Check (or, for an empty collection, record) the embedder and chunker settings."""
        emb, chunker = self.embedder, self.chunker
        with self._session() as s, s.begin():
            coll = sql.get_collection(s, name)
            meta = s.get(IndexMetaRow, coll.id)
            empty = sql.passage_count(s, coll.id) == 0
            if not empty:
                self._check_embedder(coll, meta)
                if meta.chunker != chunker.settings:
                    raise IndexMismatch(
                        f"collection {name!r} was chunked with {meta.chunker}; this store chunks with "
                        f"{chunker.settings}. Use the same chunker settings or ingest into a new collection.")
            if empty and (meta.embedder, meta.dim) != (emb.name, emb.dim):
                self._cache.drop(coll.id)  # an empty collection may switch embedders
            meta.embedder, meta.dim, meta.chunker = emb.name, emb.dim, chunker.settings
            meta.backend = getattr(emb, "backend", None)
        return coll

    def _check_embedder(self, coll: CollectionRow, meta: IndexMetaRow) -> None:
        emb = self.embedder
        if meta.embedder is not None and (meta.embedder, meta.dim) != (emb.name, emb.dim):
            raise IndexMismatch(
                f"collection {coll.name!r} was indexed with embedder {meta.embedder!r} (dim {meta.dim}), "
                f"but this store uses {emb.name!r} (dim {emb.dim}). Use --embedder {meta.embedder} "
                "or ingest into a new collection.")

    # indexes ----------------------------------------------------------------------
    def _fallback_dim(self) -> int:
        return self.embedder.dim if self.embedder else 1

    def _fresh_indexes(self, s: Session, coll: CollectionRow, meta: IndexMetaRow) -> CollectionIndexes:
        return self._cache.fresh(s, coll, meta, self._fallback_dim())

    def _load_checked(self, s: Session, name: str) -> tuple[CollectionRow, IndexMetaRow, CollectionIndexes]:
        coll = sql.get_collection(s, name)
        meta = s.get(IndexMetaRow, coll.id)
        return coll, meta, self._fresh_indexes(s, coll, meta)

    # documents and passages -------------------------------------------------------
    def list_documents(self, collection: str, *, with_text: bool = False, limit: int | None = None,
                       offset: int = 0) -> list[Document]:
        """Documents ordered by id (``limit`` of them from ``offset``, or all); ``text`` is ``""`` unless
        ``with_text`` (it can be large).

        ``meta`` holds the document's own metadata plus ``passages``, ``chars`` and ``updated_at``.
        """
        with self._session() as s:
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
        with self._session() as s:
            coll = sql.get_collection(s, collection)
            r = s.scalar(select(DocumentRow).where(DocumentRow.collection_id == coll.id, DocumentRow.doc_id == doc_id))
            if r is None:
                raise NotFound("document", doc_id, f"not in collection {collection!r}")
            return Document(id=r.doc_id, text=r.text, title=r.title, source=r.source, meta=dict(r.meta or {}))

    def delete_document(self, collection: str, doc_id: str) -> None:
        with self._lock, self._session() as s:
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
        with self._session() as s:
            coll = sql.get_collection(s, collection)
            try:
                pid = int(passage_id)
            except (TypeError, ValueError):
                raise NotFound("passage", str(passage_id)) from None
            found = self._passages(s, coll.id, [pid])
            if pid not in found:
                raise NotFound("passage", str(passage_id), f"not in collection {collection!r}")
            return found[pid]

    def _passages(self, s: Session, collection_id: int, ids: Sequence[int]) -> dict[int, Passage]:
        rows = s.execute(select(PassageRow.id, PassageRow.idx, PassageRow.start, PassageRow.end, PassageRow.text,
                                DocumentRow.doc_id, DocumentRow.title, DocumentRow.source)
                         .join(DocumentRow, DocumentRow.id == PassageRow.document_id)
                         .where(PassageRow.collection_id == collection_id, PassageRow.id.in_(list(ids))))
        return {r.id: Passage(id=str(r.id), doc_id=r.doc_id, index=r.idx, start=r.start, end=r.end, text=r.text,
                              title=r.title, source=r.source) for r in rows}

    # retrieval --------------------------------------------------------------------
    def retrieve(self, query: str, k: int = 10, *, collection: str = "default", mode: Mode = "hybrid",
                 filters: Mapping | None = None, query_vector: np.ndarray | None = None) -> list[Hit]:
        """The ``k`` best passages for ``query``; ``Hit.scores`` has ``dense``/``bm25``(/``hybrid``).

        ``filters`` keeps only passages of matching documents (:mod:`koqa.store.filters`).
        ``query_vector`` (``embedder.embed_queries([query])[0]``, computed in a batch) skips
        embedding the query here; evaluation scripts use it.
        """
        if not isinstance(query, str) or not query.strip():
            raise InvalidInput("query", query, "must be a non-empty string")
        if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= 1000:
            raise InvalidInput("k", k, "must be an integer from 1 to 1000")
        if mode not in MODES:
            raise InvalidInput("mode", mode, f"must be one of {', '.join(MODES)}")
        filters = check_filters(filters)
        with self._session() as s:
            coll, meta, idx = self._load_checked(s, collection)
            allowed = None if filters is None else self._filters.passages(s, coll, filters)
            if allowed is not None and not len(allowed):
                return []
            qvec = None
            if mode != "bm25" and len(idx.dense):
                if self.embedder is None:
                    raise InvalidInput("mode", mode, "needs an embedder; open the store with one or use mode='bm25'")
                self._check_embedder(coll, meta)
                qvec = self.embedder.embed_queries([query])[0] if query_vector is None else query_vector
            terms = self.analyzer.terms(query) if mode != "dense" else []
            with self._lock:
                ranked = search_indexes(idx, qvec, terms, k, mode, weights=self.fusion_weights, allowed=allowed)
            passages = self._passages(s, coll.id, [r.passage_id for r in ranked])
        return [Hit(passages[r.passage_id], r.score, r.scores, r.ranks) for r in ranked if r.passage_id in passages]

    def check_query(self, collection: str, filters: Mapping | None = None) -> None:
        """Raise now the error ``retrieve`` would raise for ``collection`` or ``filters`` (no index is loaded).

        The CLI calls it before loading models, so a typo fails in a second instead of after them.
        """
        filters = check_filters(filters)
        with self._session() as s:
            coll = sql.get_collection(s, collection)
            if filters is not None:
                sql.filtered_passages(s, coll, filters)

    # maintenance ------------------------------------------------------------------
    def doctor(self, *, repair: bool = True, collection: str | None = None):
        """Check (and repair) SQL/index consistency; see :mod:`koqa.store.doctor`."""
        from koqa.store.doctor import run_doctor

        return run_doctor(self, repair=repair, collection=collection)
