"""The HTTP API on a real uvicorn server on 127.0.0.1: /ask, /models/reader, batching, 503, auth, bad input."""

from __future__ import annotations

import asyncio
import functools
import threading
import time
from pathlib import Path

import httpx
import pytest

from koqa.api import ServerConfig, create_app
from koqa.api.server import serve_in_thread
from koqa.ingest.chunking import Chunker, RegexTokenizer
from koqa.ingest.embedders import FakeEmbedder
from koqa.ingest.loaders import load_documents
from koqa.pipeline.fakes import FakeReader, handset_calibration
from koqa.pipeline.corpus import Corpus
from koqa.settings import Settings

SAMPLES = Path(__file__).resolve().parents[1] / "samples"
Q = "훈민정음을 창제한 왕은 누구인가?"


@functools.cache
def chunker() -> Chunker:
    """One chunker (and so one Kiwi, ~4 s to load) for every store of the test session."""
    return Chunker(RegexTokenizer())


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """A real SQLite + FAISS + BM25 store (fake embedder) holding the bundled samples as "history"."""
    tmp = tmp_path_factory.mktemp("store")
    with Corpus.open(f"sqlite:///{tmp}/koqa.db", tmp / "indexes", embedder=FakeEmbedder(), chunker=chunker()) as s:
        s.ingest("history", load_documents([SAMPLES]), create=True)
        yield s


@pytest.fixture
def make_app(tmp_path, store):
    def make(reader=None, **config):
        settings = Settings.from_env({"KOQA_HOME": str(tmp_path)})
        config.setdefault("calibration", handset_calibration())  # not the packaged weights
        return create_app(settings, reader=reader or FakeReader({Q: "세종대왕"}), store=store,
                          config=ServerConfig(**config))

    return make


@pytest.fixture
def server(make_app):
    reader = FakeReader({Q: "세종대왕"})
    with serve_in_thread(make_app(reader, max_body_bytes=4096)) as url:
        yield url, reader


def wait_for(predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.02)


def test_ask_returns_ranked_answers_with_sources(server):
    url, _ = server
    r = httpx.post(url + "/ask", json={"question": Q, "collection": "history", "return_passages": True})
    assert r.status_code == 200, r.text
    body = r.json()
    best = body["answers"][0]
    assert best["text"] == "세종대왕"
    assert {"훈민정음과 세종대왕", "한글날"} <= {s["doc_title"] for s in best["sources"]}  # merged, sources kept
    doc = httpx.get(f"{url}/collections/history/documents/{best['doc_id']}").json()
    assert doc["text"][best["start"]:best["end"]] == "세종대왕"
    assert "**세종대왕**" in best["context"]
    p = best["passage"]
    assert p["text"][p["answer_start"]:p["answer_end"]] == "세종대왕"
    assert 0.0 <= best["score"] <= 1.0 and body["no_answer"] is False
    assert set(body["timings"]) == {"retrieve_s", "read_s", "passages_read"}


def test_ask_filters_documents(server):
    url, _ = server
    body = {"question": Q, "collection": "history", "filters": {"title": "한글날"}}
    answers = httpx.post(url + "/ask", json=body).json()["answers"]
    assert answers and all(s["doc_title"] == "한글날" for a in answers for s in a["sources"])
    for filters, status, field in (({"title": {"$eq": "한글날"}}, 400, "filters.title"), ("한글날", 422, "filters"),
                                   ({"dept": "법무"}, 400, "filters.dept")):
        r = httpx.post(url + "/ask", json={**body, "filters": filters})
        assert r.status_code == status and r.json()["error"]["field"] == field, r.text


def test_search_returns_passages_with_offsets_and_scores(server):
    url, _ = server
    r = httpx.post(url + "/search", json={"query": "훈민정음 창제", "collection": "history", "k": 3})
    assert r.status_code == 200, r.text
    hits = r.json()["hits"]
    assert [h["rank"] for h in hits] == [1, 2, 3] and {"dense", "bm25", "hybrid"} <= set(hits[0]["scores"])
    doc = httpx.get(f"{url}/collections/history/documents/{hits[0]['doc_id']}").json()
    assert doc["text"][hits[0]["start"]:hits[0]["end"]] == hits[0]["text"]
    only = httpx.post(url + "/search", json={"query": "훈민정음", "collection": "history", "filters": {"title": "서울"}})
    assert {h["title"] for h in only.json()["hits"]} == {"서울"}
    for body, field in (({"query": " "}, "query"), ({"query": "왕", "k": 0}, "k"), ({"query": "왕", "mode": "x"}, "mode")):
        r = httpx.post(url + "/search", json=body)
        assert r.status_code == 422 and r.json()["error"]["field"] == field, r.text


def test_hf_reader_endpoint_shapes(server):
    url, _ = server
    one = {"question": Q, "context": "세종대왕은 훈민정음을 창제하였다."}
    r = httpx.post(url + "/models/reader", json={"inputs": one})
    assert r.status_code == 200
    assert list(r.json()) == ["score", "start", "end", "answer"]  # the HF key order
    assert r.json()["answer"] == "세종대왕" and (r.json()["start"], r.json()["end"]) == (0, 4)
    many = httpx.post(url + "/models/reader", json={"inputs": [one, one], "parameters": {"top_k": 2}}).json()
    assert isinstance(many, list) and len(many) == 2 and all(isinstance(m, list) and len(m) == 2 for m in many)
    single_list = httpx.post(url + "/models/reader", json={"inputs": [one]}).json()
    assert isinstance(single_list, list) and single_list[0]["answer"] == "세종대왕"


def test_concurrent_requests_share_one_reader_batch(make_app):
    gate = threading.Event()
    reader = FakeReader({Q: "세종대왕"}, gate=gate)
    with serve_in_thread(make_app(reader, max_batch_size=8, max_wait_ms=50)) as url:

        async def burst():
            async with httpx.AsyncClient(base_url=url, timeout=30) as client:
                first = asyncio.create_task(client.post("/ask", json={"question": Q, "collection": "history"}))
                await asyncio.to_thread(wait_for, lambda: reader.batches == [1])  # held in the reader
                rest = [asyncio.create_task(client.post("/ask", json={"question": Q, "collection": "history"}))
                        for _ in range(5)]
                await asyncio.to_thread(wait_for, lambda: httpx.get(url + "/health").json()["batcher"]["queued"] == 5)
                gate.set()
                return await asyncio.gather(first, *rest)

        responses = asyncio.run(burst())
        assert [r.status_code for r in responses] == [200] * 6
        assert all(r.json()["answers"][0]["text"] == "세종대왕" for r in responses)
        assert reader.batches == [1, 5]  # the five waiting requests went through the reader together
        stats = httpx.get(url + "/health").json()["batcher"]
        assert (stats["batches"], stats["items"], stats["largest"]) == (2, 6, 5)


def test_full_queue_answers_503_with_retry_after(make_app):
    gate = threading.Event()
    reader = FakeReader({Q: "세종대왕"}, gate=gate)
    with serve_in_thread(make_app(reader, max_queue=2, max_batch_size=1, retry_after_s=3)) as url:

        async def flood():
            async with httpx.AsyncClient(base_url=url, timeout=30) as client:
                body = {"question": Q, "collection": "history"}
                held = [asyncio.create_task(client.post("/ask", json=body))]
                await asyncio.to_thread(wait_for, lambda: reader.batches == [1])
                held += [asyncio.create_task(client.post("/ask", json=body)) for _ in range(2)]
                await asyncio.to_thread(wait_for, lambda: httpx.get(url + "/health").json()["batcher"]["queued"] == 2)
                refused = await client.post("/ask", json=body)
                gate.set()
                return refused, await asyncio.gather(*held)

        refused, held = asyncio.run(flood())
        assert refused.status_code == 503
        assert refused.headers["retry-after"] == "3"
        assert "busy" in refused.json()["error"]["message"]
        assert [r.status_code for r in held] == [200, 200, 200]


def test_api_key_protects_everything_but_health_and_the_page(make_app):
    with serve_in_thread(make_app(api_key="s3cret")) as url:
        body = {"question": Q, "collection": "history"}
        assert httpx.get(url + "/health").status_code == 200
        assert httpx.get(url + "/").status_code == 200
        r = httpx.post(url + "/ask", json=body)
        assert r.status_code == 401 and r.json()["error"]["field"] == "X-API-Key"
        assert httpx.post(url + "/ask", json=body, headers={"X-API-Key": "wrong"}).status_code == 401
        assert httpx.post(url + "/ask", json=body, headers={"X-API-Key": "s3cret"}).status_code == 200
        assert httpx.post(url + "/models/reader", json={"inputs": {"question": "a", "context": "b"}}).status_code == 401


def test_cors_lets_a_configured_web_origin_call_the_api(tmp_path, store):
    settings = Settings.from_env({"KOQA_HOME": str(tmp_path), "KOQA_CORS_ORIGINS": "https://chat.example/, http://x.test",
                                  "KOQA_API_KEY": "s3cret"})
    assert settings.cors_origins == ("https://chat.example", "http://x.test")
    app = create_app(settings, reader=FakeReader({Q: "세종대왕"}), store=store,
                     config=ServerConfig(calibration=handset_calibration()))
    with serve_in_thread(app) as url:
        preflight = httpx.options(url + "/ask", headers={"Origin": "https://chat.example",
                                                         "Access-Control-Request-Method": "POST",
                                                         "Access-Control-Request-Headers": "content-type,x-api-key"})
        assert preflight.status_code == 200  # no key needed for the browser's preflight
        assert preflight.headers["access-control-allow-origin"] == "https://chat.example"
        r = httpx.post(url + "/ask", json={"question": Q, "collection": "history"},
                       headers={"Origin": "https://chat.example", "X-API-Key": "s3cret"})
        assert r.status_code == 200 and r.headers["access-control-allow-origin"] == "https://chat.example"
        other = httpx.options(url + "/ask", headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"})
        assert "access-control-allow-origin" not in other.headers


@pytest.mark.parametrize("body, status, field", [
    ('{"question": "세종', 400, "body"),
    ("[]", 422, "body"),
    ('{"question": ""}', 422, "question"),
    ('{"question": "   "}', 422, "question"),
    ('{"question": 5}', 422, "question"),
    ('{"question": "왕은?", "top_k_passages": "5"}', 422, "top_k_passages"),
    ('{"question": "왕은?", "top_k_passages": 0}', 422, "top_k_passages"),
    ('{"question": "왕은?", "mode": "fuzzy"}', 422, "mode"),
    ('{"question": "왕은?", "threshold": 2}', 422, "threshold"),
    ('{"question": "왕은?", "colection": "history"}', 422, "colection"),
    ('{"question": "왕은?", "collection": "nope"}', 404, "collection"),
])
def test_bad_ask_requests_name_the_field(server, body, status, field):
    url, _ = server
    r = httpx.post(url + "/ask", content=body.encode(), headers={"content-type": "application/json"})
    assert r.status_code == status, r.text
    assert r.json()["error"]["field"] == field
    assert "Traceback" not in r.text


@pytest.mark.parametrize("body, field", [
    ({"inputs": {"question": "왕은?"}}, "inputs.context"),
    ({"inputs": [{"question": "왕은?", "context": 3}]}, "inputs[0].context"),
    ({"inputs": {"question": "", "context": "본문"}}, "inputs.question"),
    ({"inputs": {"question": "왕은?", "context": "본문"}, "parameters": {"top_k": 0}}, "parameters.top_k"),
    ({"inputs": {"question": "왕은?", "context": "본문"}, "parameters": {"topk": 2}}, "parameters.topk"),
    ({"inputs": []}, "inputs"),
])
def test_bad_reader_requests_name_the_field(server, body, field):
    url, _ = server
    r = httpx.post(url + "/models/reader", json=body)
    assert r.status_code == 422, r.text
    assert r.json()["error"]["field"] == field


def test_oversize_body_is_413(server):
    url, _ = server
    r = httpx.post(url + "/ask", json={"question": "가" * 3000})
    assert r.status_code == 413 and r.json()["error"]["field"] == "body"

    def chunks():  # no Content-Length: the limit is enforced while streaming
        for _ in range(10):
            yield b" " * 1000

    r = httpx.post(url + "/ask", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413


def test_openapi_docs_are_served(server):
    url, _ = server
    spec = httpx.get(url + "/openapi.json").json()
    assert {"/ask", "/search", "/models/reader", "/health", "/collections", "/collections/{name}/documents"} \
        <= set(spec["paths"])
    assert httpx.get(url + "/docs").status_code == 200


@pytest.mark.parametrize("stop, calls, read", [(0.0, [1], 2), (1.0, [1, 1], 5)])
def test_adaptive_depth_in_the_server(make_app, stop, calls, read):
    from koqa.pipeline.depth import ReadingDepth

    reader = FakeReader({Q: "세종대왕"})
    with serve_in_thread(make_app(reader, depth=ReadingDepth(first=2, stop_confidence=stop))) as url:
        body = httpx.post(url + "/ask", json={"question": Q, "collection": "history", "top_k_passages": 5}).json()
        assert reader.batches == calls and body["timings"]["passages_read"] == read


def test_ask_admits_at_most_max_asks_and_refuses_more_at_once(make_app):
    gate = threading.Event()
    reader = FakeReader({Q: "세종대왕"}, gate=gate)
    with serve_in_thread(make_app(reader, max_asks=2, retry_after_s=2)) as url:

        async def flood():
            async with httpx.AsyncClient(base_url=url, timeout=30) as client:
                body = {"question": Q, "collection": "history"}
                held = [asyncio.create_task(client.post("/ask", json=body)) for _ in range(2)]
                await asyncio.to_thread(wait_for, lambda: sum(reader.batches) >= 1)  # both admitted, reading held
                t0 = time.perf_counter()
                refused = await client.post("/ask", json=body)
                waited = time.perf_counter() - t0
                gate.set()
                return refused, waited, await asyncio.gather(*held)

        refused, waited, held = asyncio.run(flood())
        assert refused.status_code == 503 and refused.headers["retry-after"] == "2"
        assert "2 questions are being answered" in refused.json()["error"]["message"]
        assert waited < 2.0  # refused at once, not after queueing
        assert [r.status_code for r in held] == [200, 200]
        assert httpx.post(url + "/ask", json={"question": Q, "collection": "history"}).status_code == 200


def test_ask_past_its_deadline_answers_503_and_frees_its_slot(make_app):
    gate = threading.Event()
    reader = FakeReader({Q: "세종대왕"}, gate=gate)
    with serve_in_thread(make_app(reader, max_asks=1, ask_deadline_s=0.3)) as url:
        r = httpx.post(url + "/ask", json={"question": Q, "collection": "history"}, timeout=30)
        assert r.status_code == 503 and "no answer within 0.3 s" in r.json()["error"]["message"]
        gate.set()
        assert httpx.post(url + "/ask", json={"question": Q, "collection": "history"}, timeout=30).status_code == 200
