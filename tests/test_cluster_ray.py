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
    # one proxy: both local nodes share this machine, so a proxy per node would race for the port
    serve.start(http_options={"host": "127.0.0.1", "port": port}, proxy_location="HeadOnly")
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


def test_ray_data_ingest_writes_whole_documents_and_skips_unchanged_ones(ray_cluster, pgvector_url, tmp_path):
    from koqa.cluster.ingest import cluster_ingest
    from koqa.ingest.embedders import FakeEmbedder

    folder = tmp_path / "docs"
    folder.mkdir()
    for i in range(6):
        (folder / f"d{i}.txt").write_text(f"문서 {i}번입니다. 세종대왕은 훈민정음을 창제하였다. 번호 {i}.", encoding="utf-8")
    (folder / "more.jsonl").write_text('{"id": "j1", "text": "이순신은 거북선을 이끌었다."}\n{"id": "j2", "text": ""}\n',
                                      encoding="utf-8")
    settings = _settings(pgvector_url, tmp_path)
    with load_corpus(settings) as corpus:
        seen = []
        report = cluster_ingest(corpus, "default", [folder], embedder_factory=FakeEmbedder, actors=2,
                                progress=seen.append)
        assert report.counts == {"added": 7, "updated": 0, "skipped": 0, "failed": 1}, report.failed
        assert seen and seen[-1] == 8
        assert corpus.retrieve("거북선", k=1)[0].passage.doc_id == "j1"
        assert corpus.doctor(repair=False).findings == []
        (folder / "d0.txt").write_text("바뀐 문서입니다. 장영실은 측우기를 만들었다.", encoding="utf-8")
        again = cluster_ingest(corpus, "default", [folder], embedder_factory=FakeEmbedder, actors=1)
        assert again.counts == {"added": 0, "updated": 1, "skipped": 6, "failed": 1}
        assert corpus.retrieve("측우기", k=1, mode="bm25")[0].passage.doc_id == again.updated[0]
    # the same passages as the single-process ingest of the same files
    from koqa.pipeline.corpus import Corpus

    local = Corpus.open(f"sqlite:///{tmp_path}/k.db", tmp_path / "idx", embedder=FakeEmbedder())
    try:
        assert local.ingest_paths("default", [folder]).counts["added"] == 7
        with load_corpus(settings) as corpus:
            ours = {(d.id, d.meta["passages"]) for d in corpus.list_documents("default")}
        assert ours == {(d.id, d.meta["passages"]) for d in local.list_documents("default")}
    finally:
        local.close()
