"""The store in cluster mode: PostgreSQL holds passages *and* their search indexes (pgvector).

Beside the usual tables, ``passage_vectors`` holds one row per passage: its vector
(``vector``, searched through a per-collection partial HNSW index on
``embedding::vector(dim)`` with ``vector_ip_ops``: the e5 vectors are L2-normalised, so inner
product is cosine), its Kiwi terms as a positional ``tsvector`` (GIN; the BM25 leg reads term
frequencies from it), its term count, and ``fields``: the document's ``doc_id``/``title``/
``source`` and meta as ``jsonb`` (GIN, ``jsonb_path_ops``) for metadata filters.

Crash consistency: a passage's row is written by ``COPY`` in the same transaction as the
passage, and removed with it (``ON DELETE CASCADE``), so SQL is always whole; nothing needs
reconciling and every process sees every commit at once. Passages that lack their row
(a PostgreSQL database first filled in the embedded mode) are back-filled from the vector
and terms every passage keeps, by the next ingest or ``koqa doctor``.

>>> tsvector_literal(["세종", "it's", "세종"])
"'세종':1,3 'it''s':2"
>>> vector_literal(np.array([0.5, -1.0], np.float32))
'[0.5,-1.0]'
"""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np
from sqlalchemy import text
from sqlalchemy.orm import Session

from koqa.errors import InvalidInput
from koqa.store import sqlstore as sql
from koqa.store.documents import DocumentStore
from koqa.store.filters import DOCUMENT_FIELDS
from koqa.store.schema import CollectionRow, IndexMetaRow, make_engine
from koqa.types import Prepared

__all__ = ["PgVectorStore", "PgWriter", "hnsw_index_name", "tsvector_literal", "vector_literal"]

TABLE = "passage_vectors"
_DDL = [
    f"""CREATE TABLE IF NOT EXISTS {TABLE} (
        passage_id integer PRIMARY KEY REFERENCES passages(id) ON DELETE CASCADE,
        collection_id integer NOT NULL REFERENCES collections(id) ON DELETE CASCADE,
        embedding vector NOT NULL,
        lex tsvector NOT NULL,
        n_terms integer NOT NULL,
        fields jsonb NOT NULL)""",
    f"CREATE INDEX IF NOT EXISTS {TABLE}_collection ON {TABLE} (collection_id)",
    f"CREATE INDEX IF NOT EXISTS {TABLE}_lex ON {TABLE} USING gin (lex)",
    f"CREATE INDEX IF NOT EXISTS {TABLE}_fields ON {TABLE} USING gin (fields jsonb_path_ops)",
]
_COPY = f"COPY {TABLE} (passage_id, collection_id, embedding, lex, n_terms, fields) FROM STDIN"
_MAX_POSITIONS, _MAX_POSITION, _MAX_LEXEME_BYTES = 256, 16383, 2046  # PostgreSQL's tsvector limits
_BACKFILL = 2000
# an HNSW graph element beyond its vector: the level-0 neighbour list (2m = 32 entries) and headers
_HNSW_ROW_OVERHEAD = 700
_HNSW_BUILD_MEMORY_CAP_KB = 4 * 1024 * 1024  # a million 384-dimensional passages need ~2.7 GB


def hnsw_index_name(collection_id: int) -> str:
    return f"{TABLE}_hnsw_{int(collection_id)}"


def vector_literal(v: np.ndarray) -> str:
    """pgvector's text form; float32 → Python float → repr is exact both ways."""
    return "[" + ",".join(map(repr, np.asarray(v, np.float32).tolist())) + "]"


def _quote(term: str) -> str:
    return "'" + term.replace("\\", "\\\\").replace("'", "''") + "'"


def tsvector_literal(terms: Sequence[str]) -> str:
    """A ``tsvector`` whose lexemes are exactly ``terms`` (no re-parsing), positions 1-based;
    the number of positions of a lexeme is its term frequency."""
    positions: dict[str, list[int]] = {}
    for i, t in enumerate(terms, 1):
        if t and len(t.encode()) <= _MAX_LEXEME_BYTES:
            positions.setdefault(t, []).append(min(i, _MAX_POSITION))
    return " ".join(_quote(t) + ":" + ",".join(map(str, dict.fromkeys(p[:_MAX_POSITIONS])))
                    for t, p in positions.items())


def tsquery_literal(terms: Sequence[str]) -> str:
    """Any of ``terms`` (OR), quoted so no term is parsed as an operator."""
    return " | ".join(_quote(t) for t in dict.fromkeys(terms) if t and len(t.encode()) <= _MAX_LEXEME_BYTES)


def document_fields(doc_id: str, title: str, source: str, meta: Mapping | None) -> str:
    """The ``fields`` jsonb: meta, with the document's own fields winning (as in filters.matches)."""
    return json.dumps({**(meta or {}), "doc_id": doc_id, "title": title, "source": source}, ensure_ascii=False)


def copy_rows(s: Session, rows: Iterable[tuple]) -> int:
    """COPY ``(passage_id, collection_id, vector, terms, fields_json)`` rows in ``s``'s transaction."""
    raw = s.connection().connection.driver_connection
    n = 0
    with raw.cursor() as cur, cur.copy(_COPY) as cp:
        for pid, cid, vec, terms, fields in rows:
            cp.write_row((pid, cid, vector_literal(vec), tsvector_literal(terms), len(terms), fields))
            n += 1
    return n


class PgVectorStore(DocumentStore):
    """A :class:`DocumentStore` whose indexes live in PostgreSQL (``KOQA_VECTOR_STORE=pgvector``).

    ``index_dir`` is kept for the doctor's notes only; no index file is written.
    """

    @classmethod
    def open(cls, database_url: str, index_dir: Path, **kwargs) -> "PgVectorStore":
        if not str(database_url).startswith("postgresql"):
            raise InvalidInput("KOQA_VECTOR_STORE", "pgvector",
                               f"needs a postgresql:// KOQA_DATABASE_URL, not {str(database_url).split(':')[0]}://")
        engine = make_engine(database_url)
        ensure_schema(engine)
        store = cls(engine, index_dir, **kwargs)
        store.create_collection("default", exist_ok=True)
        return store

    def writer(self, name: str, *, embedder: str, dim: int, chunker: Mapping, backend: str | None = None
               ) -> "PgWriter":
        coll = self.record_settings(name, embedder=embedder, dim=dim, chunker=chunker, backend=backend)
        with self.session() as s, s.begin():
            ensure_hnsw(s, coll.id, dim)
            backfill(s, coll.id)
        return PgWriter(self.session, coll)

    def delete_collection(self, name: str) -> None:
        with self.session() as s, s.begin():
            row = sql.get_collection(s, name)
            sql.delete_collection(s, row)
            s.execute(text(f"DROP INDEX IF EXISTS {hnsw_index_name(row.id)}"))

    def delete_document(self, collection: str, doc_id: str) -> None:
        with self.session() as s, s.begin():
            coll = sql.get_collection(s, collection)
            sql.delete_document(s, coll.id, doc_id)  # its passage_vectors rows go with the passages
            sql.bump(s, coll.id)

    def check_indexes(self, s: Session, coll: CollectionRow, repair: bool) -> list:
        from koqa.store.doctor import Finding

        meta = s.get(IndexMetaRow, coll.id)
        lacking = s.scalar(text(f"SELECT count(*) FROM passages p WHERE p.collection_id = :c AND NOT EXISTS "
                                f"(SELECT 1 FROM {TABLE} v WHERE v.passage_id = p.id)"), {"c": coll.id})
        problems = [f"{lacking} passages lack their pgvector row"] if lacking else []
        if meta.dim:
            wrong = s.scalar(text(f"SELECT count(*) FROM {TABLE} WHERE collection_id = :c "
                                  "AND vector_dims(embedding) <> :d"), {"c": coll.id, "d": meta.dim})
            if wrong:
                problems.append(f"{wrong} pgvector rows have a vector of another size than {meta.dim}")
            if not s.scalar(text("SELECT to_regclass(:n) IS NOT NULL"), {"n": hnsw_index_name(coll.id)}):
                problems.append("the HNSW index is missing")
        if problems and repair and meta.dim:
            s.execute(text(f"DELETE FROM {TABLE} WHERE collection_id = :c AND vector_dims(embedding) <> :d"),
                      {"c": coll.id, "d": meta.dim})
            ensure_hnsw(s, coll.id, meta.dim)
            backfill(s, coll.id)
            s.commit()
        return [Finding(coll.name, p + ("; rebuilt from the passages' stored vectors" if repair else ""),
                        repair and bool(meta.dim), "index") for p in problems]

    def doctor(self, *, repair: bool = True, collection: str | None = None):
        report = super().doctor(repair=repair, collection=collection)
        return replace(report, notes=["vectors in SQL (pgvector): nothing to reconcile", *report.notes])


class PgWriter:
    """The ingest pipeline's sink in pgvector mode: one transaction per group writes documents,
    passages and their pgvector rows, and bumps the generation."""

    def __init__(self, session_factory, coll: CollectionRow):
        self._session, self.coll = session_factory, coll
        self.times = {"index": 0.0, "save": 0.0}

    def existing_hashes(self, doc_ids: Sequence[str]) -> dict[str, str]:
        with self._session() as s:
            return sql.existing_hashes(s, self.coll.id, list(doc_ids))

    def commit(self, group: Sequence[Prepared]) -> None:
        with self._session() as s, s.begin():
            _, new_ids = sql.write_documents(s, self.coll.id, group)
            t = time.perf_counter()
            copy_rows(s, _prepared_rows(self.coll.id, group, new_ids))
            self.times["index"] += time.perf_counter() - t
            sql.bump(s, self.coll.id)

    def save(self) -> None:
        """Nothing to save: the indexes are in the database."""


def _prepared_rows(cid: int, group: Sequence[Prepared], new_ids: Sequence[Sequence[int]]):
    for p, ids in zip(group, new_ids):
        d = p.document
        fields = document_fields(d.id, d.title, d.source, d.meta)
        for pid, chunk, vec in zip(ids, p.chunks, p.vectors):
            yield pid, cid, vec, list(chunk.terms), fields


def ensure_schema(engine) -> None:
    """Create the extension, the table and its shared indexes (serialised across processes)."""
    with engine.begin() as conn:
        conn.execute(text("SELECT pg_advisory_xact_lock(hashtext('koqa-pgvector-schema'))"))
        try:
            conn.execute(text("CREATE EXTENSION IF NOT EXISTS vector"))
        except Exception as exc:  # not installed on the server, or no privilege to create it
            raise InvalidInput("KOQA_VECTOR_STORE", "pgvector",
                               f"the database cannot enable the pgvector extension ({exc.__class__.__name__}: "
                               f"{str(exc).splitlines()[0]}); install pgvector on the server") from None
        for ddl in _DDL:
            conn.execute(text(ddl))


def ensure_hnsw(s: Session, collection_id: int, dim: int) -> None:
    """The collection's partial HNSW index for ``dim``-dimensional vectors (re-made if its dim changed)."""
    name = hnsw_index_name(collection_id)
    s.execute(text("SELECT pg_advisory_xact_lock(hashtext(:n))"), {"n": name})
    have = s.scalar(text("SELECT indexdef FROM pg_indexes WHERE indexname = :n"), {"n": name})
    if have is not None and f"vector({int(dim)})" in have:
        return
    s.execute(text(f"DROP INDEX IF EXISTS {name}"))
    _raise_build_memory(s, collection_id, dim)
    s.execute(text(f"CREATE INDEX {name} ON {TABLE} USING hnsw ((embedding::vector({int(dim)})) vector_ip_ops) "
                   f"WHERE collection_id = {int(collection_id)}"))


def _raise_build_memory(s: Session, collection_id: int, dim: int) -> None:
    """Give this transaction's index build room for the whole graph: pgvector builds it in
    ``maintenance_work_mem`` and, once the graph outgrows it, goes on many times slower on disk
    (the default, 64 MB, holds ~25k 384-dimensional vectors). Never lowers the server's value."""
    rows = s.scalar(text(f"SELECT count(*) FROM {TABLE} WHERE collection_id = :c"), {"c": collection_id})
    want_kb = min(int(rows * (4 * dim + _HNSW_ROW_OVERHEAD) * 1.2) // 1024, _HNSW_BUILD_MEMORY_CAP_KB)
    have_kb = s.scalar(text("SELECT setting::bigint FROM pg_settings WHERE name = 'maintenance_work_mem'"))
    if want_kb > have_kb:
        s.execute(text("SELECT set_config('maintenance_work_mem', :v, true)"), {"v": f"{want_kb}kB"})


def backfill(s: Session, collection_id: int) -> int:
    """Write the missing pgvector rows of the collection's passages from their stored vector and terms."""
    total = 0
    while True:
        rows = s.execute(text(
            f"SELECT p.id, p.vector, p.terms, d.doc_id, d.title, d.source, d.meta FROM passages p "
            f"JOIN documents d ON d.id = p.document_id WHERE p.collection_id = :c AND NOT EXISTS "
            f"(SELECT 1 FROM {TABLE} v WHERE v.passage_id = p.id) ORDER BY p.id LIMIT {_BACKFILL}"),
            {"c": collection_id}).all()
        if not rows:
            return total
        total += copy_rows(s, ((r.id, collection_id, np.frombuffer(r.vector, np.float32),
                                r.terms if isinstance(r.terms, list) else json.loads(r.terms),
                                document_fields(r.doc_id, r.title, r.source,
                                                r.meta if isinstance(r.meta, dict) else json.loads(r.meta or "{}")))
                               for r in rows))


def filter_sql(filters: Mapping[str, frozenset], params: dict) -> str:
    """``fields`` conditions for checked filters (AND of keys, OR of values; a list in meta
    matches when any item does); values go into ``params``."""
    clauses = []
    for key, wanted in filters.items():
        ors = []
        for _is_bool, value in wanted:
            for probe in ({key: value}, {key: [value]}):
                name = f"f{len(params)}"
                params[name] = json.dumps(probe, ensure_ascii=False)
                ors.append(f"fields @> CAST(:{name} AS jsonb)")
            if key in DOCUMENT_FIELDS:
                ors.pop()  # document fields are never lists
        clauses.append("(" + " OR ".join(ors) + ")")
    return " AND ".join(clauses)
