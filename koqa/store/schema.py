"""SQL tables: the source of truth. FAISS and BM25 files are caches rebuilt from here.

Passages are immutable rows: updating a document deletes its passages and inserts new
ones with new ids (``AUTOINCREMENT`` in SQLite, a sequence elsewhere, so ids are never
reused), which makes "same id set" mean "same content" for the index files. Each
passage keeps its embedding (float32 bytes) and its BM25 terms, so indexes can be
rebuilt without the embedder.

>>> engine = make_engine("sqlite://")
>>> sorted(Base.metadata.tables)
['collections', 'documents', 'index_meta', 'passages']
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

from sqlalchemy import (JSON, DateTime, ForeignKey, Integer, LargeBinary, String, Text, UniqueConstraint,
                        create_engine, event)
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from koqa.errors import InvalidInput


def _now() -> datetime:
    return datetime.now(timezone.utc)


class Base(DeclarativeBase):
    pass


class CollectionRow(Base):
    __tablename__ = "collections"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    uid: Mapped[str] = mapped_column(String(32))  # names the index folder; survives renames, never reused
    generation: Mapped[int] = mapped_column(Integer, default=0)  # bumped by every committed change
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now)


class IndexMetaRow(Base):
    """What the collection's vectors and passages were made with."""

    __tablename__ = "index_meta"

    collection_id: Mapped[int] = mapped_column(ForeignKey("collections.id", ondelete="CASCADE"), primary_key=True)
    embedder: Mapped[str | None] = mapped_column(String(512))
    dim: Mapped[int | None] = mapped_column(Integer)
    chunker: Mapped[dict | None] = mapped_column(JSON)
    index_kind: Mapped[str] = mapped_column(String(16), default="flat")
    backend: Mapped[str | None] = mapped_column(String(64))  # informational: who embedded last


class DocumentRow(Base):
    __tablename__ = "documents"
    __table_args__ = (UniqueConstraint("collection_id", "doc_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    collection_id: Mapped[int] = mapped_column(ForeignKey("collections.id", ondelete="CASCADE"), index=True)
    doc_id: Mapped[str] = mapped_column(String(512))
    title: Mapped[str] = mapped_column(Text, default="")
    source: Mapped[str] = mapped_column(Text, default="")
    meta: Mapped[dict] = mapped_column(JSON, default=dict)
    text: Mapped[str] = mapped_column(Text)
    content_hash: Mapped[str] = mapped_column(String(64))
    n_passages: Mapped[int] = mapped_column(Integer)
    n_chars: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now)


class PassageRow(Base):
    __tablename__ = "passages"
    __table_args__ = {"sqlite_autoincrement": True}

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    collection_id: Mapped[int] = mapped_column(ForeignKey("collections.id", ondelete="CASCADE"), index=True)
    document_id: Mapped[int] = mapped_column(ForeignKey("documents.id", ondelete="CASCADE"), index=True)
    idx: Mapped[int] = mapped_column(Integer)
    start: Mapped[int] = mapped_column(Integer)
    end: Mapped[int] = mapped_column(Integer)
    text: Mapped[str] = mapped_column(Text)
    terms: Mapped[list] = mapped_column(JSON)
    vector: Mapped[bytes] = mapped_column(LargeBinary)


def make_engine(url: str) -> Engine:
    """An engine with the tables created; SQLite gets WAL, foreign keys and a busy timeout."""
    try:
        engine = create_engine(url, future=True)
    except Exception as exc:  # sqlalchemy raises ArgumentError / NoSuchModuleError / ImportError
        raise InvalidInput("database_url", url, f"not a usable SQLAlchemy URL ({exc})") from None
    if engine.dialect.name == "sqlite":
        database = engine.url.database
        if database and database != ":memory:" and not database.startswith("file:"):
            Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        event.listen(engine, "connect", _sqlite_pragmas)
    try:
        Base.metadata.create_all(engine)
    except (OperationalError, ProgrammingError, IntegrityError):
        Base.metadata.create_all(engine)  # another process created the tables at the same moment
    return engine


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    cur = dbapi_conn.cursor()
    # WAL: readers (the API server) never block the writer (an ingest); a kill -9 loses at
    # most uncommitted work. NORMAL sync is crash-safe for the process, as the tests need.
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()
