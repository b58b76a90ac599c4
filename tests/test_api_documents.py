"""Collections and documents over HTTP: JSON records, file uploads, get/delete, all-or-nothing ingest."""

from __future__ import annotations

import httpx
import numpy as np
import pytest
from test_api import chunker, make_app, store  # noqa: F401  (fixtures)

from koqa.api import ServerConfig, create_app
from koqa.api.server import serve_in_thread
from koqa.ingest.embedders import FakeEmbedder
from koqa.pipeline.fakes import FakeReader
from koqa.pipeline.corpus import Corpus
from koqa.settings import Settings


@pytest.fixture
def url(make_app):
    with serve_in_thread(make_app(FakeReader({"재택근무는 주 몇 회까지?": "주 2회"}), max_body_bytes=64_000)) as base:
        yield base


def collections(url):
    return {c["name"] for c in httpx.get(url + "/collections").json()}


def test_json_records_round_trip(url):
    docs = {"documents": [{"id": "policy", "title": "근무 규정", "text": "직원은 주 2회까지 재택근무를 할 수 있다."},
                          {"text": "연차는 15일이다.", "meta": {"team": "인사"}}]}
    r = httpx.post(url + "/collections/hr/documents", json=docs)
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["added"], body["failed"]) == (2, 0) and body["documents"][0] == "policy"
    assert "hr" in collections(url)
    listed = httpx.get(url + "/collections/hr/documents").json()
    assert {d["id"] for d in listed} == set(body["documents"]) and all(d["text"] is None for d in listed)
    pages = [httpx.get(url + "/collections/hr/documents", params={"limit": 1, "offset": i}).json() for i in (0, 1, 2)]
    assert [d["id"] for page in pages for d in page] == [d["id"] for d in listed] and pages[2] == []
    bad = httpx.get(url + "/collections/hr/documents", params={"limit": 0})
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "limit"
    doc = httpx.get(url + "/collections/hr/documents/policy").json()
    assert doc["title"] == "근무 규정" and doc["text"].startswith("직원은")
    ask = httpx.post(url + "/ask", json={"question": "재택근무는 주 몇 회까지?", "collection": "hr"}).json()
    assert ask["answers"][0]["text"] == "주 2회" and ask["answers"][0]["doc_id"] == "policy"
    again = httpx.post(url + "/collections/hr/documents", json=docs).json()
    assert again["skipped"] == 2
    assert httpx.delete(url + "/collections/hr/documents/policy").json()["deleted"] == "policy"
    gone = httpx.get(url + "/collections/hr/documents/policy")
    assert gone.status_code == 404 and gone.json()["error"]["field"] == "document"
    assert httpx.delete(url + "/collections/hr").status_code == 200
    assert "hr" not in collections(url)


def test_file_upload_and_replace_by_name(url):
    files = [("files", ("규정.md", "# 규정\n\n직원은 주 2회까지 재택근무를 할 수 있다.".encode(), "text/markdown")),
             ("files", ("note.txt", "노트북을 잃어버리면 신고한다.".encode("cp949"), "text/plain"))]
    r = httpx.post(url + "/collections/up/documents", files=files)
    assert r.status_code == 200, r.text
    assert r.json()["added"] == 2
    titles = {d["title"]: d for d in httpx.get(url + "/collections/up/documents").json()}
    assert set(titles) == {"규정", "note"} and titles["note"]["source"] == "note.txt"
    changed = [("files", ("note.txt", "노트북 분실은 24시간 안에 신고한다.".encode(), "text/plain"))]
    again = httpx.post(url + "/collections/up/documents", files=changed).json()
    assert (again["added"], again["updated"]) == (0, 1)


@pytest.mark.parametrize("files, status, field", [
    ([("a.md", b"# ok\n\ntext"), ("virus.exe", b"MZ")], 415, "files[1]"),
    ([("a.md", b"# ok\n\ntext"), ("broken.txt", b"\x00\x01binary")], 422, "files[1]"),
    ([("empty.txt", b"   \n")], 422, "files[0]"),
])
def test_a_bad_file_rejects_the_whole_upload(url, files, status, field):
    r = httpx.post(url + "/collections/half/documents", files=[("files", f) for f in files])
    assert r.status_code == status, r.text
    assert r.json()["error"]["field"] == field
    assert "half" not in collections(url)  # nothing was stored, not even the good file


@pytest.mark.parametrize("body, status, field", [
    ({"documents": [{"text": ""}]}, 422, "documents[0].text"),
    ({"documents": [{"text": "  "}]}, 422, "documents[0].text"),
    ({"documents": [{"text": 5}]}, 422, "documents[0].text"),
    ({"documents": []}, 422, "documents"),
    ({"docs": [{"text": "a"}]}, 422, "documents"),
    ({"documents": [{"id": "x", "text": "a"}, {"id": "x", "text": "b"}]}, 422, "documents"),
])
def test_bad_records_name_the_field(url, body, status, field):
    r = httpx.post(url + "/collections/bad/documents", json=body)
    assert r.status_code == status, r.text
    assert r.json()["error"]["field"] == field
    assert "bad" not in collections(url)


def test_not_found_unsupported_and_oversize(url):
    r = httpx.get(url + "/collections/nope/documents")
    assert r.status_code == 404 and r.json()["error"]["field"] == "collection"
    r = httpx.get(url + "/collections/history/documents/nope")
    assert r.status_code == 404 and r.json()["error"]["field"] == "document"
    r = httpx.post(url + "/collections/x/documents", content=b"hello", headers={"content-type": "text/plain"})
    assert r.status_code == 415 and r.json()["error"]["field"] == "content-type"
    r = httpx.post(url + "/collections/x/documents", files=[("files", ("big.txt", b"a" * 100_000))])
    assert r.status_code == 413
    assert "x" not in collections(url)


class ExplodingEmbedder(FakeEmbedder):
    """Fails on a marked passage, after earlier batches were already committed."""

    def embed_passages(self, texts):
        if any("💥" in t for t in texts):
            raise RuntimeError("embedder crashed")
        return super().embed_passages(texts)


def test_a_failing_ingest_leaves_nothing_behind(tmp_path):
    with Corpus.open(f"sqlite:///{tmp_path}/k.db", tmp_path / "idx", embedder=ExplodingEmbedder(), chunker=chunker()) as s:
        app = create_app(Settings.from_env({"KOQA_HOME": str(tmp_path)}), reader=FakeReader(), store=s,
                         config=ServerConfig())
        docs = [{"id": f"d{i}", "text": f"문서 {i}번의 내용이다."} for i in range(80)] + [{"id": "boom", "text": "💥"}]
        with serve_in_thread(app) as base:
            r = httpx.post(base + "/collections/crash/documents", json={"documents": docs}, timeout=60)
            assert r.status_code == 500 and "Traceback" not in r.text
            assert r.json()["error"]["message"].startswith("internal error")
            assert "crash" not in collections(base)
            s.create_collection("kept")
            r = httpx.post(base + "/collections/kept/documents", json={"documents": docs[:3]})
            assert r.status_code == 200
            r = httpx.post(base + "/collections/kept/documents", json={"documents": docs[3:]})
            assert r.status_code == 500
            assert [d["id"] for d in httpx.get(base + "/collections/kept/documents").json()] == ["d0", "d1", "d2"]
            assert np.isfinite(len(s.retrieve("문서", k=3, collection="kept")))
