"""Distributed ingest on Ray Data: ``koqa ingest PATH --cluster ADDRESS``.

Files → documents → chunks in a pool of chunker actors (each loads Kiwi once), embedded by
``map_batches`` on a pool of embedder actors (a GPU each when the cluster has GPUs), then
written by the driver in groups, each one transaction (documents, passages, pgvector rows by
``COPY``) through :class:`~koqa.store.pgvector.PgWriter`: so a ``kill -9`` anywhere leaves
whole documents or none. Into an empty collection the rows are loaded without the HNSW index,
which is built once at the end; otherwise the index is extended in place. Unchanged documents
(same content hash as stored) are skipped before chunking, exactly as the embedded ingest.

Resources: actors hold their CPUs for their whole life. Asking for one CPU per actor with
as many actors as CPUs left Ray Data no CPU for its read/convert tasks, and the job stalled;
so the actors share at most ``cpu_share`` of the cluster's CPUs (fractional CPUs each).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
from sqlalchemy import select

from koqa.ingest.chunking import Chunker
from koqa.ingest.loaders import LoadError, iter_files, load_file
from koqa.ingest.pipeline import IngestReport, document_hash, prepare_document
from koqa.store import sqlstore as sql
from koqa.store.schema import DocumentRow
from koqa.types import Chunk, Document, Prepared

__all__ = ["actor_cpus", "cluster_ingest", "ingest_on_cluster"]
FILES_PER_BATCH = 16


def actor_cpus(total_cpus: float, actors: int, cpu_share: float = 0.75) -> float:
    """CPUs for each of ``actors`` so that they use at most ``cpu_share`` of the cluster.

    >>> actor_cpus(2, 3)
    0.5
    >>> actor_cpus(16, 3)
    1.0
    """
    return round(min(1.0, max(0.05, total_cpus * cpu_share / max(1, actors))), 2)


class _ChunkFiles:
    """A Ray Data actor: paths → one row per document (chunked, or marked skipped / failed)."""

    def __init__(self, chunker: Chunker, stored_ref):
        import ray

        self.chunker = chunker
        self.stored: dict[str, str] = ray.get(stored_ref) if isinstance(stored_ref, ray.ObjectRef) else stored_ref

    def __call__(self, batch: dict) -> dict:
        rows: list[dict] = []
        todo: list[tuple[Document, str]] = []
        for path in batch["path"]:
            try:
                items = load_file(Path(path))
            except LoadError as exc:
                items = [exc]
            for item in items:
                try:
                    if isinstance(item, LoadError):
                        raise item
                    doc = prepare_document(item)
                except LoadError as exc:
                    rows.append(_row("failed", reason=exc.reason, source=exc.source))
                    continue
                h = document_hash(doc)
                if self.stored.get(doc.id) == h:
                    rows.append(_row("skipped", doc=doc))
                else:
                    todo.append((doc, h))
        for (doc, h), chunks in zip(todo, self.chunker.chunk_many([d for d, _ in todo])):
            rows.append(_row("todo", doc=doc, hash=h, chunks=chunks, replaces=doc.id in self.stored))
        return _columns(rows)


class _Embed:
    """A Ray Data actor: adds each document's passage vectors (float32 bytes)."""

    def __init__(self, embedder_factory: Callable, title_context: bool):
        self.embedder = embedder_factory()
        self.title_context = title_context

    def __call__(self, batch: dict) -> dict:
        texts, owners = [], []
        for i, (status, doc, chunks) in enumerate(zip(batch["status"], batch["doc"], batch["chunks"])):
            if status == "todo":
                title = json.loads(doc)["title"]
                for c in json.loads(chunks):
                    texts.append(f"{title}\n{c['text']}" if self.title_context and title else c["text"])
                    owners.append(i)
        vectors = self.embedder.embed_passages(texts) if texts else np.zeros((0, 1), np.float32)
        owners_arr = np.asarray(owners, np.int64)
        batch["vectors"] = np.array([np.ascontiguousarray(vectors[owners_arr == i], np.float32).tobytes()
                                     for i in range(len(batch["status"]))], dtype=object)
        return batch


def cluster_ingest(corpus, collection: str, paths: Sequence, *, embedder_factory: Callable, actors: int = 1,
                   chunk_actors: int = 1, batch_size: int = 64, create: bool = True,
                   progress: Callable[[int], None] | None = None) -> IngestReport:
    """Ingest files into ``collection`` of a :class:`~koqa.pipeline.pgcorpus.PgCorpus` on the
    Ray cluster ``ray.init`` connected to; ``embedder_factory`` (picklable) builds the embedder
    in each actor. ``progress(documents done)`` after each written group."""
    import ray

    started = time.perf_counter()
    if create:
        corpus.create_collection(collection, exist_ok=True)
    emb, chunker = corpus.embedder, corpus.chunker
    writer = corpus.writer(collection, embedder=emb.name, dim=emb.dim, chunker=chunker.settings,
                           backend=getattr(emb, "backend", None))
    files, failed = [], []
    for f in iter_files([Path(p) for p in paths]):
        if isinstance(f, LoadError):
            failed.append((f.source, f.reason))
        else:
            files.append(str(f))
    outcome = {"added": [], "updated": [], "skipped": [], "failed": failed}
    if not files:
        return IngestReport(**outcome, timings={"total": time.perf_counter() - started})
    with corpus.session() as s:
        coll = sql.get_collection(s, collection)
        stored = dict(s.execute(select(DocumentRow.doc_id, DocumentRow.content_hash)
                                .where(DocumentRow.collection_id == coll.id)).all())
    resources = ray.cluster_resources()
    gpus = resources.get("GPU", 0.0)
    cpus = actor_cpus(resources.get("CPU", 1.0), actors + chunk_actors)
    blocks = max(1, min(len(files), 4 * (actors + chunk_actors)))  # enough blocks to keep every actor busy
    # a chunking batch is one output block and one embedding task: a batch larger than a block would
    # merge the blocks again and leave all but one embedder actor idle
    files_per_batch = max(1, min(FILES_PER_BATCH, len(files) // blocks))
    ds = (ray.data.from_items([{"path": p} for p in files], override_num_blocks=blocks)
          .map_batches(_ChunkFiles, fn_constructor_args=(_unloaded(chunker), ray.put(stored)), batch_size=files_per_batch,
                       concurrency=chunk_actors, num_cpus=cpus)
          .map_batches(_Embed, fn_constructor_args=(embedder_factory, chunker.title_context), batch_size=batch_size,
                       concurrency=actors, num_cpus=0 if gpus else cpus, num_gpus=1 if gpus else 0))
    bulk = not stored  # an empty collection: load without the HNSW index, build it once at the end
    if bulk:
        _drop_hnsw(corpus, coll.id)
    try:
        passages, store_s = _write(ds, writer, outcome, batch_size, progress)
    finally:
        t = time.perf_counter()
        if bulk:  # also after a failure: the rows written so far are committed and need their index
            _build_hnsw(corpus, coll.id, emb.dim)
        build_s = time.perf_counter() - t
    timings = {**writer.times, "store": store_s, "hnsw_build": build_s, "total": time.perf_counter() - started}
    return IngestReport(**outcome, passages=passages, timings=timings)


def ingest_on_cluster(address: str, corpus, settings, collection: str, paths: Sequence, *, actors: int = 1,
                      backend: str | None = None, progress: Callable[[int], None] | None = None) -> IngestReport:
    """``koqa ingest --cluster``: connect to the Ray cluster at ``address`` and :func:`cluster_ingest`."""
    from functools import partial

    import ray

    from koqa.errors import InvalidInput
    from koqa.ingest.embedders import load_embedder

    if settings.vector_store != "pgvector":
        raise InvalidInput("KOQA_VECTOR_STORE", settings.vector_store,
                           "cluster ingest writes to PostgreSQL + pgvector: set KOQA_VECTOR_STORE=pgvector and a "
                           "postgresql:// KOQA_DATABASE_URL")
    if actors < 1:
        raise InvalidInput("actors", actors, "must be at least 1")
    ray.init(address=address, ignore_reinit_error=True)
    factory = partial(load_embedder, settings.embedder, settings=settings, **({"backend": backend} if backend else {}))
    return cluster_ingest(corpus, collection, paths, embedder_factory=factory, actors=actors, progress=progress)


def _write(ds, writer, outcome: dict, batch_size: int, progress) -> tuple[int, float]:
    seen: set[str] = set()
    passages, store_s, done = 0, 0.0, 0
    for batch in ds.iter_batches(batch_size=batch_size, batch_format="numpy"):
        group: list[Prepared] = []
        for status, doc_json, h, chunks_json, replaces, vec, reason, source in zip(
                batch["status"], batch["doc"], batch["hash"], batch["chunks"], batch["replaces"], batch["vectors"],
                batch["reason"], batch["source"]):
            if status == "failed":
                outcome["failed"].append((str(source), str(reason)))
                continue
            doc = Document(**json.loads(doc_json))
            if doc.id in seen:
                outcome["failed"].append((doc.source or doc.id, f"duplicate document id {doc.id!r} in this ingest; ignored"))
                continue
            seen.add(doc.id)
            if status == "skipped":
                outcome["skipped"].append(doc.id)
                continue
            chunks = [Chunk(**{**c, "terms": tuple(c["terms"])}) for c in json.loads(chunks_json)]
            vectors = np.frombuffer(vec, np.float32).reshape(len(chunks), -1)
            group.append(Prepared(doc, str(h), chunks, vectors, bool(replaces)))
        t = time.perf_counter()
        if group:
            writer.commit(group)
        store_s += time.perf_counter() - t
        for p in group:
            outcome["updated" if p.replaces else "added"].append(p.document.id)
            passages += len(p.chunks)
        done += len(batch["status"])
        if progress:
            progress(done)
    return passages, store_s


def _drop_hnsw(corpus, collection_id: int) -> None:
    from sqlalchemy import text

    from koqa.store.pgvector import hnsw_index_name

    with corpus.session() as s, s.begin():
        s.execute(text(f"DROP INDEX IF EXISTS {hnsw_index_name(collection_id)}"))


def _build_hnsw(corpus, collection_id: int, dim: int) -> None:
    """Build the index over the loaded rows (far faster than growing it row by row); a kill
    before this leaves no index, which the next ingest or ``koqa doctor`` builds."""
    from koqa.store.pgvector import ensure_hnsw

    with corpus.session() as s, s.begin():
        ensure_hnsw(s, collection_id, dim)


def _unloaded(chunker: Chunker) -> Chunker:
    """The same chunker with a Kiwi not yet loaded: cheap to ship, each actor loads its own."""
    from koqa.text.kiwi import KiwiAnalyzer

    return Chunker(chunker.tokenizer, max_tokens=chunker.max_tokens, overlap_sentences=chunker.overlap,
                   title_context=chunker.title_context, analyzer=KiwiAnalyzer())


def _row(status: str, *, doc: Document | None = None, hash: str = "", chunks: Sequence[Chunk] = (),
         replaces: bool = False, reason: str = "", source: str = "") -> dict:
    return {"status": status, "doc": json.dumps(asdict(doc), ensure_ascii=False) if doc else "", "hash": hash,
            "chunks": json.dumps([asdict(c) for c in chunks], ensure_ascii=False), "replaces": replaces,
            "reason": reason, "source": source}


def _columns(rows: list[dict]) -> dict:
    keys = ("status", "doc", "hash", "chunks", "replaces", "reason", "source")
    return {k: np.array([r[k] for r in rows], dtype=bool if k == "replaces" else object) for k in keys}

