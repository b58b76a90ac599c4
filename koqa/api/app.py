"""The FastAPI app factory: a thin HTTP shell over :class:`koqa.QAPipeline` and the store.

>>> from koqa.settings import Settings
>>> from koqa.pipeline.fakes import FakeReader, MemoryRetriever
>>> app = create_app(Settings.from_env({"KOQA_HOME": "/tmp/kq"}),
...                  reader=FakeReader(), store=MemoryRetriever({"demo": []}))
>>> sorted(p for p in app.openapi()["paths"] if p.startswith("/models"))
['/models/reader']

Models load once, in the lifespan (at server start), unless injected; tests inject
small parts. Run it with ``koqa serve`` or ``uvicorn`` (``create_app`` as factory).
"""

from __future__ import annotations

import asyncio
import threading
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

import koqa
from koqa.api import routes_docs, routes_qa
from koqa.api.batcher import MicroBatcher
from koqa.api.config import ServerConfig
from koqa.api.errors import ApiKeyGuard, BodyLimit, install_error_handlers
from koqa.api.state import ServerState
from koqa.pipeline.parts import load_corpus, load_reader
from koqa.pipeline.qa import QAPipeline
from koqa.settings import Settings

STATIC = Path(__file__).with_name("static")


def create_app(settings: Settings, *, reader=None, store=None, config: ServerConfig | None = None,
               batcher=None) -> FastAPI:
    """An app serving ``reader`` and ``store`` (loaded from ``settings`` at start when None).

    ``batcher``: something with :class:`MicroBatcher`'s interface that reads elsewhere (cluster
    mode: :class:`koqa.cluster.serve.RemoteReader`, a Ray Serve deployment); it then also stands
    in for the reader, which this process does not load.
    """
    config = config or ServerConfig()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        live_reader = reader if reader is not None else batcher if batcher is not None else load_reader(settings)
        live_store = store if store is not None else load_corpus(settings)
        loaded_here = reader is None and batcher is None
        await asyncio.to_thread(_warm_up, live_store, live_reader if loaded_here else None)
        pipeline = QAPipeline(live_store, live_reader, threshold=config.threshold, depth=config.depth,
                              calibration=config.calibration)
        live_batcher = batcher if batcher is not None else MicroBatcher(
            live_reader, max_batch_size=config.max_batch_size, max_wait_s=config.max_wait_s,
            max_queue=config.max_queue, retry_after_s=config.retry_after_s)
        app.state.koqa = ServerState(settings, config, live_store, live_reader, pipeline, live_batcher, threading.Lock())
        try:
            async with live_batcher:
                yield
        finally:
            if store is None and hasattr(live_store, "close"):
                live_store.close()

    app = FastAPI(title="koqa", version=koqa.__version__, lifespan=lifespan,
                  description="Korean question answering over your documents. Errors: "
                              '`{"error": {"field", "message"}}`. Send `X-API-Key` when the server has a key.')
    install_error_handlers(app)
    app.include_router(routes_qa.router)
    app.include_router(routes_docs.router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(STATIC / "index.html", media_type="text/html; charset=utf-8")

    # Outermost first: the key check, then the size limit, before any route reads the body.
    # The page and the docs hold no data, so they stay reachable to enter a key.
    app.add_middleware(BodyLimit, max_bytes=config.max_body_bytes)
    app.add_middleware(ApiKeyGuard, api_key=config.api_key or settings.api_key,
                       public=("/health", "/", "/docs", "/openapi.json", "/redoc", "/favicon.ico"),
                       public_prefixes=("/static/", "/docs/"))
    if settings.cors_origins:  # outside the key check: a browser's preflight carries no key
        app.add_middleware(CORSMiddleware, allow_origins=list(settings.cors_origins), allow_methods=["GET", "POST", "DELETE"],
                           allow_headers=["content-type", "x-api-key"], expose_headers=["retry-after"], max_age=600)
    return app


def _warm_up(store, reader) -> None:
    """Pay the lazy loads (Kiwi for BM25 queries, the first forward pass) before the first request."""
    warm_up = getattr(store, "warm_up", None)  # optional: a Corpus loads Kiwi here
    if warm_up is not None:
        warm_up()
    if reader is not None:
        reader.read("준비되었나?", "준비되었다.")
