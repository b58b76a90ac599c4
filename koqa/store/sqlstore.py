"""SQL operations of the document store (one function per unit of work).

Every write runs inside the caller's transaction and bumps the collection's
``generation``, which tells other processes that their in-memory indexes are stale.

>>> from sqlalchemy.orm import Session
>>> from koqa.store.schema import make_engine
>>> with Session(make_engine("sqlite://")) as s, s.begin():
...     c = create_collection(s, "demo", "flat")
...     [r.name for r in list_collections(s)]
['demo']
"""

from __future__ import annotations

import re
import uuid
from datetime import datetime, timezone
from typing import Sequence

import numpy as np
from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.orm import Session

from koqa.errors import InvalidInput, NotFound
from koqa.types import Prepared
from koqa.store.filters import matches, unknown_keys
from koqa.store.schema import CollectionRow, DocumentRow, IndexMetaRow, PassageRow

_NAME = re.compile(r"^\w[\w.-]{0,63}$")


def check_collection_name(name: str) -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise InvalidInput("collection", name, "use 1-64 letters, digits, '_', '-' or '.', not starting with '.' or '-'")
    return name


def list_collections(session: Session) -> list[CollectionRow]:
    return list(session.scalars(select(CollectionRow).order_by(CollectionRow.name)))


def get_collection(session: Session, name: str) -> CollectionRow:
    row = session.scalar(select(CollectionRow).where(CollectionRow.name == name))
    if row is None:
        names = [r.name for r in list_collections(session)]
        raise NotFound("collection", name, f"existing collections: {', '.join(names) or '(none)'}")
    return row


def create_collection(session: Session, name: str, index_kind: str) -> CollectionRow:
    check_collection_name(name)
    if session.scalar(select(CollectionRow.id).where(CollectionRow.name == name)) is not None:
        raise InvalidInput("collection", name, "already exists")
    row = CollectionRow(name=name, uid=uuid.uuid4().hex, generation=0)
    session.add(row)
    session.flush()
    session.add(IndexMetaRow(collection_id=row.id, index_kind=index_kind))
    return row


def delete_collection(session: Session, row: CollectionRow) -> None:
    session.execute(delete(PassageRow).where(PassageRow.collection_id == row.id))
    session.execute(delete(DocumentRow).where(DocumentRow.collection_id == row.id))
    session.execute(delete(IndexMetaRow).where(IndexMetaRow.collection_id == row.id))
    session.execute(delete(CollectionRow).where(CollectionRow.id == row.id))


def bump(session: Session, collection_id: int) -> int:
    session.execute(update(CollectionRow).where(CollectionRow.id == collection_id)
                    .values(generation=CollectionRow.generation + 1))
    return session.scalar(select(CollectionRow.generation).where(CollectionRow.id == collection_id))


def passage_count(session: Session, collection_id: int) -> int:
    return session.scalar(select(func.count(PassageRow.id)).where(PassageRow.collection_id == collection_id)) or 0


def existing_hashes(session: Session, collection_id: int, doc_ids: Sequence[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for i in range(0, len(doc_ids), 500):
        rows = session.execute(select(DocumentRow.doc_id, DocumentRow.content_hash).where(
            DocumentRow.collection_id == collection_id, DocumentRow.doc_id.in_(doc_ids[i:i + 500])))
        out.update({r.doc_id: r.content_hash for r in rows})
    return out


def write_documents(session: Session, collection_id: int, group: Sequence[Prepared]) -> tuple[list[int], list[list[int]]]:
    """Store documents with their passages, replacing older versions.

    Returns ``(removed passage ids, new passage ids per document)``.
    """
    removed: list[int] = []
    new_ids: list[list[int]] = []
    now = datetime.now(timezone.utc)
    for p in group:
        doc = p.document
        row = session.scalar(select(DocumentRow).where(DocumentRow.collection_id == collection_id,
                                                       DocumentRow.doc_id == doc.id))
        if row is None:
            row = DocumentRow(collection_id=collection_id, doc_id=doc.id, created_at=now)
            session.add(row)
        else:
            removed += session.scalars(select(PassageRow.id).where(PassageRow.document_id == row.id)).all()
            session.execute(delete(PassageRow).where(PassageRow.document_id == row.id))
        row.title, row.source, row.meta, row.text = doc.title, doc.source, dict(doc.meta), doc.text
        row.content_hash, row.n_passages, row.n_chars, row.updated_at = p.content_hash, len(p.chunks), len(doc.text), now
        session.flush()
        values = [{"collection_id": collection_id, "document_id": row.id, "idx": c.index, "start": c.start,
                   "end": c.end, "text": c.text, "terms": list(c.terms),
                   "vector": np.ascontiguousarray(v, np.float32).tobytes()} for c, v in zip(p.chunks, p.vectors)]
        ids = session.scalars(insert(PassageRow).returning(PassageRow.id, sort_by_parameter_order=True), values).all()
        new_ids.append(list(ids))
    return removed, new_ids


def delete_document(session: Session, collection_id: int, doc_id: str) -> list[int]:
    row = session.scalar(select(DocumentRow).where(DocumentRow.collection_id == collection_id,
                                                   DocumentRow.doc_id == doc_id))
    if row is None:
        raise NotFound("document", doc_id)
    removed = session.scalars(select(PassageRow.id).where(PassageRow.document_id == row.id)).all()
    session.execute(delete(PassageRow).where(PassageRow.document_id == row.id))
    session.delete(row)
    return list(removed)


def filtered_passages(session: Session, coll: CollectionRow, filters) -> np.ndarray:
    """Ids of the passages of the documents of ``coll`` that match ``filters`` (see :mod:`koqa.store.filters`).

    A meta key that no document of the collection has is refused: it is far likelier a typo than a
    filter meant to match nothing.
    """
    docs = session.execute(select(DocumentRow.id, DocumentRow.doc_id, DocumentRow.title, DocumentRow.source,
                                  DocumentRow.meta).where(DocumentRow.collection_id == coll.id)).all()
    missing = unknown_keys(filters, [d.meta for d in docs])
    if missing:
        raise InvalidInput(f"filters.{missing[0]}", missing[0],
                           f"no document in collection {coll.name!r} has this metadata key")
    wanted = [d.id for d in docs if matches(filters, d._mapping)]
    ids = []
    for i in range(0, len(wanted), 10_000):  # under every database's bound-parameter limit
        ids += session.scalars(select(PassageRow.id).where(PassageRow.document_id.in_(wanted[i:i + 10_000])))
    return np.asarray(ids, np.int64)
