"""``koqa doctor``: check that SQL and the index files agree, and repair what does not.

Checks, per collection: passages without their document, documents whose passages are
missing or do not match their text, vectors of the wrong size, index files that are
missing, unreadable, or hold other ids, vectors or term counts than SQL. Repairs: bad
SQL rows are deleted (the report names each document to re-ingest) and index files are
rebuilt from the vectors and terms stored in SQL. Temp files of killed writers are
removed. Index folders that belong to no collection of this database are only noted
(another database may share the index folder; they are never needed by this one).

>>> DoctorReport([Finding("demo", "dense index lacks 3 passages", repaired=True)]).healthy
True
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from koqa.store import sqlstore as sql
from koqa.store.files import clean_temp
from koqa.store.indexes import BM25_FILE, DENSE_FILE, CollectionIndexes
from koqa.store.schema import CollectionRow, DocumentRow, IndexMetaRow, PassageRow


@dataclass(frozen=True)
class Finding:
    """One problem; ``area`` is ``sql`` (rows), ``index`` (FAISS/BM25 files) or ``files`` (folders)."""

    collection: str
    problem: str
    repaired: bool = False
    area: str = "sql"


@dataclass(frozen=True)
class DoctorReport:
    findings: list[Finding] = field(default_factory=list)
    checked: dict[str, dict[str, int]] = field(default_factory=dict)  # collection → documents/passages
    notes: list[str] = field(default_factory=list)  # harmless observations; do not affect health

    @property
    def healthy(self) -> bool:
        """True when nothing is wrong any more (all findings repaired)."""
        return all(f.repaired for f in self.findings)


def run_doctor(store, *, repair: bool = True, collection: str | None = None) -> DoctorReport:
    findings: list[Finding] = []
    checked: dict[str, dict[str, int]] = {}
    with store.lock, store.session() as s:
        rows = [sql.get_collection(s, collection)] if collection else sql.list_collections(s)
        for coll in rows:
            found = _check_sql(s, coll, repair) + store.check_indexes(s, coll, repair)
            if repair and any(f.repaired for f in found):
                sql.bump(s, coll.id)  # other processes then reconcile their in-memory indexes
                s.commit()
                store._cache.drop(coll.id)
            findings += found
            checked[coll.name] = {
                "documents": s.scalar(select(func.count(DocumentRow.id)).where(DocumentRow.collection_id == coll.id)),
                "passages": sql.passage_count(s, coll.id)}
            s.rollback()
        notes = _check_folders(store.index_dir, {r.uid for r in sql.list_collections(s)}, repair)
    return DoctorReport(findings, checked, notes)


def _check_sql(s: Session, coll: CollectionRow, repair: bool) -> list[Finding]:
    out = []
    orphans = s.scalars(select(PassageRow.id).where(PassageRow.collection_id == coll.id).where(
        ~PassageRow.document_id.in_(select(DocumentRow.id).where(DocumentRow.collection_id == coll.id)))).all()
    if orphans:
        if repair:
            s.execute(delete(PassageRow).where(PassageRow.id.in_(orphans)))
            s.commit()
        out.append(Finding(coll.name, f"{len(orphans)} passages without a document", repair))
    meta = s.get(IndexMetaRow, coll.id)
    bad = []
    for doc in s.scalars(select(DocumentRow).where(DocumentRow.collection_id == coll.id)):
        reason = _document_problem(s, doc, meta.dim)
        if reason:
            bad.append((doc, reason))
    for doc, reason in bad:
        if repair:
            sql.delete_document(s, coll.id, doc.doc_id)
            s.commit()
        out.append(Finding(coll.name, f"document {doc.doc_id!r} ({doc.source or doc.title}): {reason}"
                           + ("; deleted, re-ingest it" if repair else ""), repair))
    if meta.embedder is None and sql.passage_count(s, coll.id):
        out.append(Finding(coll.name, "passages exist but the index metadata names no embedder"))
    return out


def _document_problem(s: Session, doc: DocumentRow, dim: int | None) -> str:
    rows = s.execute(select(PassageRow.idx, PassageRow.start, PassageRow.end, PassageRow.text,
                            func.length(PassageRow.vector).label("nbytes"))
                     .where(PassageRow.document_id == doc.id).order_by(PassageRow.idx)).all()
    if len(rows) != doc.n_passages or not rows:
        return f"has {len(rows)} of its {doc.n_passages} passages"
    for r in rows:
        if doc.text[r.start:r.end] != r.text:
            return f"passage {r.idx} does not match the document text at {r.start}:{r.end}"
        if dim and r.nbytes != 4 * dim:
            return f"passage {r.idx} has a vector of {r.nbytes} bytes, expected {4 * dim}"
    return ""


def check_index_files(store, s: Session, coll: CollectionRow, repair: bool) -> list[Finding]:
    """Findings about the FAISS/BM25 files of ``coll`` (rebuilt from SQL when ``repair``)."""
    meta = s.get(IndexMetaRow, coll.id)
    folder = store.index_dir / coll.uid
    n = sql.passage_count(s, coll.id)
    if meta.dim is None:
        return []
    fresh = CollectionIndexes.load(folder, meta.dim, meta.index_kind)  # from disk, not the cached copy
    problems = [f"{name} unreadable" for name in fresh._unreadable]
    problems += [f"{name} missing" for name in (DENSE_FILE, BM25_FILE) if n and not (folder / name).exists()]
    problems += _compare(s, coll.id, fresh)
    if not problems:
        return []
    if repair:
        idx = CollectionIndexes(folder, meta.dim, meta.index_kind)
        idx.rebuild(s, coll.id)
        idx.save()
    return [Finding(coll.name, f"{p}" + ("; indexes rebuilt from SQL" if repair else ""), repair, "index")
            for p in problems]


def _compare(s: Session, collection_id: int, idx: CollectionIndexes) -> list[str]:
    sql_ids = np.fromiter(s.scalars(select(PassageRow.id).where(PassageRow.collection_id == collection_id)), np.int64)
    out = []
    for name, have in (("dense index", idx.dense.ids), ("BM25 index", idx.bm25.ids)):
        missing, extra = np.setdiff1d(sql_ids, have), np.setdiff1d(have, sql_ids)
        if len(missing):
            out.append(f"{name} lacks {len(missing)} passages")
        if len(extra):
            out.append(f"{name} holds {len(extra)} deleted passages")
        if len(have) != len(np.unique(have)):
            out.append(f"{name} holds duplicate ids")
    if out:
        return out
    for i in range(0, len(sql_ids), 5000):
        part = sql_ids[i:i + 5000].tolist()
        rows = s.execute(select(PassageRow.id, PassageRow.vector, PassageRow.terms)
                         .where(PassageRow.id.in_(part)).order_by(PassageRow.id)).all()
        stored = np.frombuffer(b"".join(r.vector for r in rows), np.float32).reshape(len(rows), idx.dim)
        if not np.allclose(idx.dense.vectors([r.id for r in rows]), stored, atol=1e-5):
            return ["dense index vectors differ from the vectors in SQL"]
        if any(idx.bm25.length(r.id) != len(r.terms) for r in rows):
            return ["BM25 index term counts differ from the terms in SQL"]
    return []


def _check_folders(index_dir: Path, uids: set[str], repair: bool) -> list[str]:
    notes = []
    if not index_dir.is_dir():
        return notes
    for folder in sorted(p for p in index_dir.iterdir() if p.is_dir()):
        if folder.name not in uids and (folder / DENSE_FILE).exists():
            notes.append(f"index folder {folder} belongs to no collection of this database "
                         "(a deleted collection, or another database sharing the folder)")
        stale = clean_temp(folder) if repair else []
        if stale:
            notes.append(f"removed {len(stale)} temp files of an interrupted write in {folder}")
    return notes
