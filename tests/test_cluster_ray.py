"""Cluster mode on Ray: the reader on Ray Serve behind koqa's own app, and Ray Data ingest
(a real 2-node Ray cluster and a real PostgreSQL + pgvector, all on 127.0.0.1; kept few and small)."""

from __future__ import annotations

import asyncio
from functools import partial

import httpx
import pytest

from koqa.pipeline.fakes import FakeReader
from koqa.pipeline.parts import load_corpus
from koqa.settings import Settings
from koqa.types import Document

pytestmark = [pytest.mark.cluster, pytest.mark.slow]
Q = "훈민정음을 창제한 왕은?"


def _settings(url, tmp_path) -> Settings:
    return Settings(home=tmp_path, database_url=url, vector_store="pgvector", embedder="fake")


def test_serve_answers_through_two_reader_replicas_with_batching(ray_cluster, pgvector_url, tmp_path):
    from ray import serve

    from koqa.api.batcher import ReadOptions
    from koqa.api.config import ServerConfig
    from koqa.cluster.postgres import free_port
    from koqa.cluster.serve import ReaderScaling, build_app

    settings = _settings(pgvector_url, tmp_path)
    with load_corpus(settings) as corpus:
        corpus.ingest("default", [Document(id="a", title="세종", text="세종대왕은 훈민정음을 창제하였다.")])
    port = free_port()
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    try:
        app = build_app(settings, ServerConfig(max_wait_ms=50), ReaderScaling(replicas=2),
                        reader_factory=partial(FakeReader, {Q: "세종대왕"}))
        serve.run(app, name="koqa", route_prefix="/")
        url = f"http://127.0.0.1:{port}"

        async def many():
            async with httpx.AsyncClient(base_url=url, timeout=60) as client:
                return await asyncio.gather(*(client.post("/ask", json={"question": Q}) for _ in range(8)))

        answers = asyncio.run(many())
        assert all(r.status_code == 200 for r in answers), answers[0].text
        assert {r.json()["answers"][0]["text"] for r in answers} == {"세종대왕"}
        health = httpx.get(url + "/health", timeout=30).json()
        assert health["status"] == "ok" and health["reader"] == "fake-reader"
        bad = httpx.post(url + "/ask", json={"question": ""}, timeout=30)
        assert bad.status_code == 422 and "error" in bad.json()
        read = httpx.post(url + "/models/reader", timeout=30,
                          json={"inputs": {"question": Q, "context": "세종대왕은 훈민정음을 창제하였다."}})
        assert read.status_code == 200, read.text
        handle = serve.get_deployment_handle("KoqaReader", app_name="koqa")
        direct = [handle.read.remote((Q, ["세종대왕은 훈민정음을 창제하였다."], ReadOptions())) for _ in range(12)]
        assert {r.result()[0].text for r in direct} == {"세종대왕"}
        infos = {i["replica"]: i for i in (handle.info.remote().result() for _ in range(20))}
        assert max(i["largest"] for i in infos.values()) >= 2  # @serve.batch grouped concurrent questions
    finally:
        serve.shutdown()
