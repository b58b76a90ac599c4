"""koqa inside a real ``haystack.Pipeline``: a real SQLite store, the real reader code, YAML round trip."""

from __future__ import annotations

from pathlib import Path

import pytest

haystack = pytest.importorskip("haystack", reason="needs haystack-ai (pip install 'koqa[haystack]')")

from haystack import Document, Pipeline  # noqa: E402

from koqa.errors import InvalidInput  # noqa: E402
from koqa.ingest.embedders import FakeEmbedder  # noqa: E402
from koqa.integrations.haystack import KoqaReader, KoqaRetriever  # noqa: E402
from koqa.pipeline.corpus import Corpus  # noqa: E402
from koqa.settings import Settings  # noqa: E402

Q = "훈민정음을 창제한 왕은 누구인가?"
ALLOWED = ["koqa.integrations.haystack"]


@pytest.fixture(scope="module")
def home(demo_home) -> Path:
    return demo_home


def _pipeline(home: Path, reader: str, **reader_options) -> Pipeline:
    p = Pipeline()
    p.add_component("retriever", KoqaRetriever("demo", top_k=5, home=str(home), embedder="fake"))
    p.add_component("reader", KoqaReader(reader, home=str(home), backend="torch-fp32", **reader_options))
    p.connect("retriever", "reader")
    return p


def _run(p: Pipeline, question: str = Q) -> list:
    return p.run({"retriever": {"query": question}, "reader": {"query": question}})["reader"]["answers"]


def test_retriever_returns_passages_with_koqa_scores_and_offsets(home):
    retriever = KoqaRetriever("demo", top_k=3, home=str(home), embedder="fake")
    docs = retriever.run(Q)["documents"]
    assert 1 <= len(docs) <= 3 and all(isinstance(d, Document) for d in docs)
    with Corpus.from_settings(Settings(home=home)) as store:
        for d in docs:
            full = store.get_document("demo", d.meta["doc_id"]).text
            assert full[d.meta["start"]:d.meta["end"]] == d.content
            assert d.score == d.meta["scores"]["hybrid"] and min(d.meta["ranks"].values()) >= 1
    titled = retriever.run(Q, filters={"title": "서울"})["documents"]
    assert titled and {d.meta["title"] for d in titled} == {"서울"}


def test_pipeline_answers_with_offsets_into_the_documents(home, tiny_model_dir):
    answers = _run(_pipeline(home, str(tiny_model_dir), top_k=3))
    found = [a for a in answers if a.data is not None]
    nulls = [a for a in answers if a.data is None]
    assert 1 <= len(found) <= 3 and len(nulls) == 1 and nulls[0].meta["no_answer"]
    for a in found:
        off = a.document_offset
        assert a.document.content[off.start:off.end] == a.data and 0.0 <= a.score <= 1.0
        assert a.meta["end"] - a.meta["start"] == len(a.data)
    best = max(found, key=lambda a: a.score)
    assert nulls[0].score == pytest.approx(1 - best.score)


def test_pipeline_round_trips_through_yaml(home, tiny_model_dir):
    p = _pipeline(home, str(tiny_model_dir), top_k=2, threshold=0.4, read_first=0)
    text = p.dumps()
    assert "koqa.integrations.haystack.KoqaRetriever" in text and "threshold: 0.4" in text
    again = Pipeline.loads(text, allowed_modules=ALLOWED)
    assert again.dumps() == text
    reader = again.get_component("reader")
    assert (reader.top_k, reader.threshold, reader.read_first, reader._reader) == (2, 0.4, 0, None)  # cheap init
    assert [a.data for a in _run(again)] == [a.data for a in _run(p)]


def test_bad_parameters_name_the_value():
    with pytest.raises(InvalidInput, match="mode"):
        KoqaRetriever("demo", mode="fuzzy")
    with pytest.raises(InvalidInput, match="filters"):
        KoqaRetriever("demo", filters=["source"])
    with pytest.raises(InvalidInput, match="top_k"):
        KoqaReader(top_k=0)
    with pytest.raises(InvalidInput, match="threshold"):
        KoqaReader(threshold=1.5)
    with pytest.raises(InvalidInput, match="question"):
        KoqaRetriever("demo").run("  ")


@pytest.mark.slow
def test_real_reader_answers_in_korean_with_koqa_ask_scores(home):
    from koqa.pipeline.parts import load_reader
    from koqa.pipeline.qa import QAPipeline

    answers = _run(_pipeline(home, "koqa:reader-small"))
    best = answers[0]
    assert best.data == "세종대왕", [a.data for a in answers]
    assert best.document.content[best.document_offset.start:best.document_offset.end] == "세종대왕"
    with Corpus.from_settings(Settings(home=home), embedder=FakeEmbedder()) as store:
        assert store.get_document("demo", best.meta["doc_id"]).text[best.meta["start"]:best.meta["end"]] == "세종대왕"
        reader = load_reader(Settings(home=home, reader_backend="torch-fp32"))
        ask = QAPipeline(store, reader).run(Q, "demo", 5, 5)
    assert best.score == pytest.approx(ask.answers[0].score) and ask.answers[0].start == best.meta["start"]
