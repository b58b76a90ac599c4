"""koqa in LangChain (``langchain-core`` only): the retriever over a real SQLite store, the QA runnable and tool."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("langchain_core", reason="needs langchain-core (pip install 'koqa[langchain]')")

from langchain_core.documents import Document  # noqa: E402
from langchain_core.messages import ToolMessage  # noqa: E402
from langchain_core.runnables import RunnableLambda  # noqa: E402

from koqa.errors import InvalidInput  # noqa: E402
from koqa.ingest.embedders import FakeEmbedder  # noqa: E402
from koqa.integrations.langchain import KoqaQA, KoqaRetriever, answer_tool  # noqa: E402
from koqa.pipeline.corpus import Corpus  # noqa: E402
from koqa.pipeline.fakes import FakeReader, handset_calibration  # noqa: E402
from koqa.pipeline.qa import QAPipeline  # noqa: E402
from koqa.settings import Settings  # noqa: E402

Q = "훈민정음을 창제한 왕은 누구인가?"


@pytest.fixture(scope="module")
def home(demo_home) -> Path:
    return demo_home


@pytest.fixture(scope="module")
def retriever(home) -> KoqaRetriever:
    return KoqaRetriever(collection="demo", top_k=3, home=str(home), embedder="fake")


def test_retriever_returns_documents_with_offsets_and_scores(retriever, home):
    docs = retriever.invoke(Q)
    assert 1 <= len(docs) <= 3 and all(isinstance(d, Document) for d in docs)
    with Corpus.from_settings(Settings(home=home)) as store:
        for d in docs:
            full = store.get_document("demo", d.metadata["doc_id"]).text
            assert full[d.metadata["start"]:d.metadata["end"]] == d.page_content
            assert d.metadata["score"] == d.metadata["scores"]["hybrid"] and d.id


def test_filters_pass_through_per_call_and_per_retriever(retriever, home):
    assert {d.metadata["title"] for d in retriever.invoke(Q, filters={"title": "서울"})} == {"서울"}
    assert {d.metadata["title"] for d in retriever.invoke(Q, filters={"title": ["서울", "한글날"]})} == {"서울", "한글날"}
    only = KoqaRetriever(collection="demo", home=str(home), embedder="fake", filters={"title": "한글날"})
    assert {d.metadata["title"] for d in only.invoke(Q)} == {"한글날"}
    with pytest.raises(InvalidInput, match="filters.dept"):
        retriever.invoke(Q, filters={"dept": "법무"})


def test_retriever_composes_in_a_chain(retriever):
    chain = retriever | RunnableLambda(lambda docs: [d.metadata["doc_id"] for d in docs])
    assert chain.invoke(Q) == [d.metadata["doc_id"] for d in retriever.invoke(Q)]


def test_bad_settings_name_the_value(home):
    # at construction pydantic wraps koqa's InvalidInput in its ValidationError (both ValueErrors), message kept
    with pytest.raises(ValueError, match="mode: must be one of"):
        KoqaRetriever(collection="demo", mode="fuzzy")
    with pytest.raises(ValueError, match="top_k: must be"):
        KoqaRetriever(collection="demo", top_k=0)
    with pytest.raises(ValueError, match="top_n_answers: must be"):
        KoqaQA(top_n_answers=0)
    with pytest.raises(InvalidInput, match="question"):
        KoqaRetriever(collection="demo", home=str(home), embedder="fake").invoke(" ")


@pytest.fixture(scope="module")
def qa(home) -> KoqaQA:
    corpus = Corpus.from_settings(Settings(home=home), embedder=FakeEmbedder())
    pipeline = QAPipeline(corpus, FakeReader({Q: "세종대왕"}), calibration=handset_calibration())
    return KoqaQA(collection="demo", top_k_passages=5, pipeline=pipeline)


def test_qa_runnable_answers_with_sources(qa, home):
    out = qa.invoke(Q)
    assert out["answer"] == "세종대왕" and not out["no_answer"]
    src = out["answers"][0]["sources"][0]
    with Corpus.from_settings(Settings(home=home)) as store:
        assert store.get_document("demo", src["doc_id"]).text[src["start"]:src["end"]] == "세종대왕"
    filtered = qa.invoke({"question": Q, "filters": {"title": "서울"}})
    assert filtered["answer"] != "세종대왕"
    assert {s["doc_title"] for a in filtered["answers"] for s in a["sources"]} <= {"서울"}
    assert {h.passage.title for h in qa.run(Q, {"title": "서울"}).hits} == {"서울"}
    with pytest.raises(InvalidInput, match="input"):
        qa.invoke({"query": Q})


def test_answer_tool_gives_text_and_the_record(qa):
    tool = answer_tool(qa)
    assert tool.name == "koqa_answer" and {"question", "filters"} <= set(tool.args)
    msg = tool.invoke({"type": "tool_call", "id": "c1", "name": tool.name, "args": {"question": Q}})
    assert isinstance(msg, ToolMessage) and msg.content.startswith("Answer: 세종대왕")
    assert "Sources:" in msg.content and msg.artifact["answer"] == "세종대왕"


def test_qa_loads_its_models_from_settings(home, tiny_model_dir):
    qa = KoqaQA(collection="demo", top_k_passages=3, top_n_answers=2, home=str(home), embedder="fake",
                reader=str(tiny_model_dir), backend="torch-fp32")
    out = qa.invoke(Q)
    assert 1 <= len(out["answers"]) <= 2 and out["collection"] == "demo"
    assert out["answer"] in ("", out["answers"][0]["text"])
