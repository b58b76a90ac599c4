"""``koqa ask`` and ``koqa serve``: thin shells over :class:`koqa.QAPipeline` and :mod:`koqa.api`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer

from koqa.cli.app import FILTER_HELP, app, handles_errors, parse_filters
from koqa.settings import Settings


@app.command()
@handles_errors
def ask(
    question: str = typer.Argument(..., help="The question, in Korean."),
    collection: str = typer.Option("default", "--collection", "-c", help="Collection to search."),
    top_k: int = typer.Option(20, "-k", "--top-k", help="Passages to retrieve and read."),
    top_n: int = typer.Option(5, "-n", "--top-n", help="Answers to show."),
    mode: str = typer.Option("hybrid", "--mode", help="hybrid, dense or bm25 retrieval."),
    threshold: Optional[float] = typer.Option(None, "--threshold", help="Abstain below this confidence (0..1)."),
    read_first: int = typer.Option(5, "--read-first", help="Adaptive depth: read this many passages first (0: all at once)."),
    stop_confidence: float = typer.Option(0.5, help="Adaptive depth: stop after the first pass at this confidence."),
    calibration: Optional[Path] = typer.Option(None, help="Calibration JSON (default: the packaged one)."),
    filter_: Optional[List[str]] = typer.Option(None, "--filter", metavar="KEY=VALUE", help=FILTER_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Answer QUESTION from the documents of a collection, with each answer's source."""
    from koqa.pipeline import QAPipeline
    from koqa.pipeline.qa import check_options, check_question
    from koqa.pipeline.parts import load_corpus

    check_question(question)  # bad input fails before minutes of model loading, not after
    check_options(top_k, top_n, mode, threshold)
    filters = parse_filters(filter_)
    settings = Settings.from_env()
    with load_corpus(settings, with_embedder=False) as store:
        store.check_query(collection, filters)
    pipeline = QAPipeline.from_settings(settings, depth=_depth(read_first, stop_confidence),
                                        calibration=_calibration(calibration))
    result = pipeline.run(question, collection, top_k, top_n, mode, threshold=threshold, filters=filters)
    if as_json:
        typer.echo(json.dumps(result.record(collection), ensure_ascii=False, indent=2))
        return
    typer.echo(f"Q: {result.question}")
    if not result.answers:
        typer.echo("A: (no answer: nothing relevant was found in the collection)")
        return
    if result.no_answer:
        typer.echo(f"A: (no confident answer: best confidence {result.answers[0].score:.2f} "
                   f"< threshold {result.threshold:.2f}; candidates below)")
    for rank, a in enumerate(result.answers, 1):
        head = "A:" if rank == 1 and not result.no_answer else f"{rank}."
        typer.echo(f"{head} {' '.join(a.text.split())}    (confidence {a.score:.2f})")
        src = a.sources[0] if a.sources else {}
        where = src.get("source") or a.doc_id
        typer.echo(f"   source: {a.doc_title or a.doc_id} — {where} [chars {a.start}–{a.end}]"
                   + (f", also in {len(a.sources) - 1} more passage(s)" if len(a.sources) > 1 else ""))
        typer.echo(f"   {a.context}")
        if rank == 1 and len(result.answers) > 1:
            typer.echo("Other candidates:")


@app.command()
@handles_errors
def serve(
    host: str = typer.Option("127.0.0.1", help="Interface to listen on (0.0.0.0 for all)."),
    port: int = typer.Option(8000, help="TCP port."),
    max_batch_size: int = typer.Option(16, help="Most questions in one reader batch."),
    max_wait_ms: float = typer.Option(5.0, help="How long a batch waits for more requests."),
    max_queue: int = typer.Option(64, help="Questions allowed to wait; more get 503 + Retry-After."),
    max_asks: int = typer.Option(16, help="POST /ask requests answered at a time; more get 503 + Retry-After."),
    ask_deadline_s: float = typer.Option(30.0, help="POST /ask answers 503 when not done within this many seconds."),
    max_body_mb: float = typer.Option(32.0, help="Largest request body (MB); larger gets 413."),
    threshold: Optional[float] = typer.Option(None, help="Abstain below this confidence (default: calibration's)."),
    read_first: int = typer.Option(5, "--read-first", help="Adaptive depth: read this many passages first (0: all at once)."),
    stop_confidence: float = typer.Option(0.5, help="Adaptive depth: stop after the first pass at this confidence."),
    calibration: Optional[Path] = typer.Option(None, help="Calibration JSON (default: the packaged one)."),
    log_level: str = typer.Option("info", help="uvicorn log level."),
    cluster: Optional[str] = typer.Option(None, "--cluster", metavar="ADDRESS",
                                          help="Serve on this Ray cluster (ray://host:10001, host:6379 or auto): "
                                               "the reader as Ray Serve replicas; needs KOQA_VECTOR_STORE=pgvector."),
    replicas: int = typer.Option(1, help="--cluster: reader replicas (the minimum when autoscaling)."),
    max_replicas: Optional[int] = typer.Option(None, help="--cluster: autoscale reader replicas up to this many."),
    ingress_replicas: int = typer.Option(1, help="--cluster: HTTP (retrieval) replicas."),
    reader_cpus: float = typer.Option(1.0, help="--cluster: CPUs Ray reserves per reader replica on a node "
                                                "without GPUs (fractions share a core)."),
    ingress_cpus: float = typer.Option(1.0, help="--cluster: CPUs Ray reserves per HTTP (retrieval) replica."),
) -> None:
    """Serve the HTTP API and the web page (models load once at start). API key: env KOQA_API_KEY."""
    import uvicorn

    from koqa.api import ServerConfig, create_app

    config = ServerConfig(max_batch_size=max_batch_size, max_wait_ms=max_wait_ms, max_queue=max_queue,
                          max_asks=max_asks, ask_deadline_s=ask_deadline_s,
                          max_body_bytes=int(max_body_mb * 1024 * 1024), threshold=threshold,
                          depth=_depth(read_first, stop_confidence), calibration=_calibration(calibration))
    settings = Settings.from_env()
    if cluster:
        from koqa.cluster.serve import ReaderScaling, run_on_cluster

        run_on_cluster(cluster, settings, config, ReaderScaling(replicas, max_replicas, ingress_replicas=ingress_replicas,
                                                                   cpus=reader_cpus, ingress_cpus=ingress_cpus),
                       host=host, port=port, echo=lambda m: typer.echo(m, err=True))
        return
    typer.echo(f"koqa: serving on http://{host}:{port}/ (docs at /docs)"
               + (", API key required" if settings.api_key else ""), err=True)
    uvicorn.run(create_app(settings, config=config), host=host, port=port, log_level=log_level)


def _depth(read_first: int, stop_confidence: float):
    from koqa.pipeline.depth import ReadingDepth

    return ReadingDepth(read_first, stop_confidence) if read_first > 0 else None


def _calibration(path: Path | None):
    from koqa.pipeline import Calibration

    return Calibration.load(path) if path else None
