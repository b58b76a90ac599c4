"""Corpus with the fake embedder and a real SQLite file + real FAISS/BM25 files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from koqa.errors import IndexMismatch, InvalidInput, NotFound
from koqa.ingest.chunking import Chunker, RegexTokenizer
from koqa.ingest.embedders import FakeEmbedder
from koqa.text.kiwi import KiwiAnalyzer
from koqa.retriever.base import Retriever
from koqa.pipeline.corpus import Corpus
from koqa.types import Document

DOCS = [
    Document(id="sejong", title="세종대왕", source="sejong.txt",
             text="세종대왕은 조선의 제4대 왕이다. 1443년에 훈민정음을 창제하였다.\n\n집현전 학자들이 훈민정음 창제를 도왔다."),
    Document(id="yi", title="이순신", source="yi.txt",
             text="이순신은 조선 중기의 무신이다. 임진왜란 때 거북선을 이끌고 한산도 대첩에서 승리하였다."),
    Document(id="dokdo", title="독도", source="dokdo.txt", text="독도는 동해에 있는 화산섬이다. 울릉도에서 87킬로미터 떨어져 있다."),
]


@pytest.fixture(scope="module")
def analyzer():
    return KiwiAnalyzer()


@pytest.fixture
def make_store(tmp_path, analyzer):
    opened = []

    def make(embedder=None, max_tokens=24, **kw):
        chunker = Chunker(RegexTokenizer(), max_tokens=max_tokens, analyzer=analyzer, **kw)
        store = Corpus.open(f"sqlite:///{tmp_path}/koqa.db", tmp_path / "indexes",
                            embedder=embedder or FakeEmbedder(), chunker=chunker)
        opened.append(store)
        return store

    yield make
    for s in opened:
        s.close()


def test_ingest_retrieve_all_modes(make_store):
    store = make_store()
    report = store.ingest("default", DOCS)
    assert report.counts == {"added": 3, "updated": 0, "skipped": 0, "failed": 0}
    assert report.passages >= 3 and {"chunk", "embed", "store", "index", "save", "total"} <= set(report.timings)
    assert isinstance(store, Retriever)
    for mode in ("hybrid", "dense", "bm25"):
        hits = store.retrieve("거북선을 이끈 장군은?", k=2, mode=mode)
        assert hits[0].passage.doc_id == "yi", mode
        assert hits[0].passage.title == "이순신" and hits[0].passage.source == "yi.txt"
    hit = store.retrieve("훈민정음 창제", k=3)[0]
    doc = store.get_document("default", hit.passage.doc_id)
    assert doc.text[hit.passage.start:hit.passage.end] == hit.passage.text
    assert set(hit.scores) == {"dense", "bm25", "hybrid"} and hit.score == hit.scores["hybrid"]
    assert set(hit.ranks) <= {"dense", "bm25"}
    assert store.get_passage("default", hit.passage.id) == hit.passage


def test_filters_keep_only_matching_documents(make_store):
    store = make_store()
    store.ingest("default", [Document(id=d.id, title=d.title, source=d.source, text=d.text,
                                      meta={"era": "조선" if d.id != "dokdo" else "현대", "n": i})
                             for i, d in enumerate(DOCS)])
    for mode in ("hybrid", "dense", "bm25"):
        hits = store.retrieve("조선 훈민정음 거북선 독도", k=10, mode=mode, filters={"era": "조선"})
        assert {h.passage.doc_id for h in hits} == {"sejong", "yi"}, mode
        hits = store.retrieve("조선 훈민정음 거북선 독도", k=10, mode=mode, filters={"doc_id": ["dokdo"], "n": 2})
        assert {h.passage.doc_id for h in hits} == {"dokdo"}, mode
    assert store.retrieve("훈민정음", filters={"era": "고려"}) == []
    with pytest.raises(InvalidInput) as exc:
        store.retrieve("훈민정음", filters={"eras": "조선"})  # a typo: no document has this key
    assert exc.value.field == "filters.eras"


def test_a_cached_filter_follows_every_change_of_the_collection(make_store):
    store, other = make_store(), make_store()  # other: another process writing the same database
    store.ingest("default", [Document(id="yi", title="이순신", text=DOCS[1].text, meta={"era": "조선"})])
    era = {"era": "조선"}
    assert {h.passage.doc_id for h in store.retrieve("조선", k=10, filters=era)} == {"yi"}
    other.ingest("default", [Document(id="sejong", title="세종", text=DOCS[0].text, meta={"era": "조선"})])
    assert {h.passage.doc_id for h in store.retrieve("조선", k=10, filters=era)} == {"yi", "sejong"}
    other.ingest("default", [Document(id="yi", title="이순신", text=DOCS[1].text + " 다시", meta={"era": "고려"})])
    assert {h.passage.doc_id for h in store.retrieve("조선", k=10, filters=era)} == {"sejong"}
    other.delete_document("default", "sejong")
    assert store.retrieve("조선", k=10, filters=era) == []


def test_unchanged_skipped_changed_replaced_deleted(make_store):
    emb = FakeEmbedder()
    store = make_store(emb)
    store.ingest("default", DOCS)
    calls = emb.calls
    again = store.ingest("default", DOCS)
    assert again.counts["skipped"] == 3 and emb.calls == calls  # nothing re-embedded
    old = {h.passage.id for h in store.retrieve("독도", k=10, mode="bm25")}
    changed = Document(id="dokdo", title="독도", source="dokdo.txt", text="독도는 대한민국의 섬이다. 괭이갈매기가 산다.")
    report = store.ingest("default", [changed, DOCS[0]])
    assert report.updated == ["dokdo"] and report.skipped == ["sejong"]
    hits = store.retrieve("대한민국", k=1, mode="bm25")
    assert hits[0].passage.doc_id == "dokdo" and hits[0].passage.id not in old
    assert "화산섬" not in " ".join(h.passage.text for h in store.retrieve("화산섬", k=10, mode="bm25"))
    store.delete_document("default", "dokdo")
    assert all(h.passage.doc_id != "dokdo" for h in store.retrieve("독도 섬", k=10))
    assert [d.id for d in store.list_documents("default")] == ["sejong", "yi"]
    with pytest.raises(NotFound):
        store.delete_document("default", "dokdo")


def test_documents_listing_and_lookup(make_store):
    store = make_store()
    store.ingest("default", DOCS)
    listed = store.list_documents("default")
    assert [d.text for d in listed] == ["", "", ""] and listed[0].meta["passages"] >= 1
    assert store.list_documents("default", with_text=True)[0].text == DOCS[2].text  # sorted by id: dokdo
    with pytest.raises(NotFound):
        store.get_document("default", "nope")
    with pytest.raises(NotFound):
        store.get_passage("default", "999999")
    with pytest.raises(NotFound):
        store.get_passage("default", "not-a-number")


def test_collections_are_separate_and_unknown_ones_are_not_found(make_store, tmp_path):
    store = make_store()
    store.create_collection("history")
    store.ingest("history", DOCS[:1])
    store.ingest("islands", DOCS[2:], create=True)
    assert store.collections() == ["default", "history", "islands"]
    assert {h.passage.doc_id for h in store.retrieve("섬", k=5, collection="islands")} == {"dokdo"}
    with pytest.raises(NotFound, match="nope"):
        store.retrieve("질문", collection="nope")
    with pytest.raises(NotFound):
        store.ingest("nope", DOCS)
    with pytest.raises(InvalidInput):
        store.create_collection("history")
    with pytest.raises(InvalidInput):
        store.create_collection("../escape")
    uid_dirs = set((tmp_path / "indexes").iterdir())
    store.delete_collection("history")
    assert store.collections() == ["default", "islands"] and len(set((tmp_path / "indexes").iterdir())) == len(uid_dirs) - 1
    with pytest.raises(NotFound):
        store.delete_collection("history")


def test_bad_inputs_are_typed_errors(make_store):
    store = make_store()
    store.ingest("default", DOCS)
    for kwargs in ({"query": ""}, {"query": "a", "k": 0}, {"query": "a", "mode": "sparse"}, {"query": "a", "k": True}):
        with pytest.raises(InvalidInput):
            store.retrieve(**kwargs)
    report = store.ingest("default", [Document(id="e", text="   "), DOCS[0], DOCS[0],
                                      Document(id="m", text="본문", meta={"bad": object()}),
                                      Document(id="x" * 600, text="본문")])
    assert [s for s, _ in report.failed][:2] == ["e", "sejong.txt"] and report.skipped == ["sejong"]
    assert "JSON" in report.failed[2][1] and "512" in report.failed[3][1] and len(report.failed) == 4


def test_mismatched_embedder_or_chunker_is_refused(make_store):
    make_store().ingest("default", DOCS)
    other = make_store(FakeEmbedder(dim=64, name="fake-64"))
    with pytest.raises(IndexMismatch, match="fake-64"):
        other.retrieve("독도")
    with pytest.raises(IndexMismatch):
        other.ingest("default", DOCS)
    assert other.retrieve("독도", mode="bm25")[0].passage.doc_id == "dokdo"  # BM25 needs no embedder
    with pytest.raises(IndexMismatch, match="chunk"):
        make_store(max_tokens=99).ingest("default", [Document(id="new", text="새 문서")])
    other.create_collection("fresh")  # a new collection takes any embedder
    other.ingest("fresh", DOCS)
    assert other.retrieve("독도", collection="fresh")[0].passage.doc_id == "dokdo"


def test_store_without_embedder_serves_bm25_and_admin(make_store, tmp_path, analyzer):
    make_store().ingest("default", DOCS)
    bare = Corpus.open(f"sqlite:///{tmp_path}/koqa.db", tmp_path / "indexes", embedder=None,
                       chunker=Chunker(RegexTokenizer(), max_tokens=24, analyzer=analyzer))
    try:
        assert bare.retrieve("거북선", mode="bm25")[0].passage.doc_id == "yi"
        with pytest.raises(InvalidInput):
            bare.retrieve("거북선", mode="dense")
        with pytest.raises(InvalidInput):
            bare.ingest("default", DOCS)
        bare.delete_document("default", "yi")
    finally:
        bare.close()


def test_index_files_are_rebuilt_from_sql_when_lost_or_corrupt(make_store, tmp_path):
    make_store().ingest("default", DOCS)
    folder = next(p for p in (tmp_path / "indexes").iterdir() if (p / "dense.faiss").exists())
    (folder / "dense.faiss").write_bytes(b"garbage")
    (folder / "bm25.npz").unlink()
    store = make_store()
    assert store.retrieve("거북선", k=1)[0].passage.doc_id == "yi"
    assert store.retrieve("거북선", k=1, mode="bm25")[0].passage.doc_id == "yi"
    assert store.doctor(repair=False).findings == []


def test_a_second_process_view_sees_changes(make_store):
    writer, reader = make_store(), make_store()
    writer.ingest("default", DOCS[:2])
    assert {h.passage.doc_id for h in reader.retrieve("섬", k=10)} == {"sejong", "yi"}
    writer.ingest("default", DOCS[2:])
    writer.delete_document("default", "yi")
    assert {h.passage.doc_id for h in reader.retrieve("섬", k=10)} == {"sejong", "dokdo"}


def test_doctor_finds_and_repairs_disagreements(make_store, tmp_path):
    from sqlalchemy import delete

    from koqa.store.indexes import CollectionIndexes
    from koqa.store.schema import PassageRow

    store = make_store()
    store.ingest("default", DOCS)
    assert store.doctor().healthy and store.doctor().findings == []
    folder = next(p for p in (tmp_path / "indexes").iterdir() if (p / "dense.faiss").exists())
    stale = CollectionIndexes.load(folder, 256)
    stale.add([99999], np.ones((1, 256), np.float32) / 16, [["유령"]])
    stale.save()  # the files now hold a passage SQL does not have
    with store.engine.begin() as conn:  # and SQL loses one passage of a document
        pid = conn.execute(PassageRow.__table__.select().limit(1)).first().id
        conn.execute(delete(PassageRow).where(PassageRow.id == pid))
    check = store.doctor(repair=False)
    assert not check.healthy and any("passages" in f.problem for f in check.findings)
    fixed = store.doctor()
    assert fixed.healthy and fixed.findings
    assert store.doctor(repair=False).findings == []
    assert all(h.passage.id != "99999" for h in store.retrieve("유령", k=10, mode="bm25"))


@pytest.mark.parametrize("kind", ["hnsw", "ivf"])
def test_other_index_kinds(make_store, kind):
    store = make_store()
    store.create_collection("big", index=kind)
    store.ingest("big", DOCS)
    store.delete_document("big", "sejong")
    assert store.retrieve("거북선", k=1, collection="big")[0].passage.doc_id == "yi"
    assert store.doctor(repair=False).findings == []


def test_ingest_paths_reports_failures_and_keeps_going(make_store, tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.txt").write_text(DOCS[0].text, encoding="utf-8")
    (docs / "b.md").write_text("# 이순신\n\n" + DOCS[1].text, encoding="utf-8")
    (docs / "bad.txt").write_bytes(b"\x00\x01binary")
    store = make_store()
    report = store.ingest_paths("default", [docs, tmp_path / "missing.pdf"])
    assert len(report.added) == 2
    assert sorted(Path(s).name for s, _ in report.failed) == ["bad.txt", "missing.pdf"]
    assert store.ingest_paths("default", [docs]).counts["skipped"] == 2


def test_progress_is_reported(make_store):
    seen = []
    make_store().ingest("default", DOCS, progress=seen.append, batch_size=1)
    assert seen and seen[-1].documents == 3 and seen[-1].passages == seen[-1].passages_total
    assert [p.passages for p in seen] == sorted(p.passages for p in seen)
