"""QAPipeline over injected parts: one reader call, merged answers, document offsets, calibration, abstain."""

from __future__ import annotations

import asyncio
import functools

import json

import pytest

import koqa
from koqa.errors import InvalidInput, NotFound
from koqa.pipeline import Calibration, QAPipeline
from koqa.pipeline.calibration import FALLBACK
from koqa.pipeline.answers import highlight, normalize
from koqa.pipeline.fakes import FakeReader, MemoryRetriever, handset_calibration
from koqa.types import Hit, Passage


QA = functools.partial(QAPipeline, calibration=handset_calibration())  # not the packaged weights

DOC = "머리말입니다. 세종대왕은 1443년 훈민정음을 창제하였다. 훈민정음은 세종대왕이 1446년에 반포하였다."
Q = "훈민정음을 창제한 왕은 누구인가?"


class ListRetriever:
    """Hands back fixed hits (passages at known offsets of DOC) and counts calls."""

    def __init__(self, hits):
        self.hits, self.calls = hits, []

    def retrieve(self, query, k=10, *, collection="default", mode="hybrid", filters=None):
        if collection != "history":
            raise NotFound("collection", collection)
        self.calls.append((query, k, mode, filters))
        return self.hits[:k]


def passage(i: int, start: int, end: int) -> Passage:
    return Passage(f"d1:{i}", "d1", i, start, end, DOC[start:end], title="훈민정음")


@pytest.fixture
def hits():
    a, b = DOC.index("세종대왕은"), DOC.index("훈민정음은 세종")
    return [Hit(passage(0, a, b), 0.03, {"dense": 0.8, "bm25": 12.0, "hybrid": 0.03}, {"dense": 1, "bm25": 1}),
            Hit(passage(1, b, len(DOC)), 0.02, {"dense": 0.7, "bm25": 6.0, "hybrid": 0.02}, {"dense": 2, "bm25": 2})]


def test_answer_offsets_point_into_the_original_document(hits):
    qa = QA(ListRetriever(hits), FakeReader({Q: "세종대왕"}))
    best = qa.ask(Q, collection="history")[0]
    assert best.text == "세종대왕" and best.doc_id == "d1" and best.doc_title == "훈민정음"
    assert DOC[best.start:best.end] == "세종대왕"
    assert best.start == DOC.index("세종대왕은")
    assert best.context.startswith("**세종대왕**은 1443년")


def test_filters_reach_the_retriever(hits):
    retriever = ListRetriever(hits)
    qa = QA(retriever, FakeReader({Q: "세종대왕"}))
    qa.ask(Q, collection="history", filters={})
    qa.ask(Q, collection="history", filters={"doc_id": "d1"})
    assert [c[3] for c in retriever.calls] == [None, {"doc_id": "d1"}]
    memory = QA(MemoryRetriever({"c": [("d1", "훈민정음", DOC), ("d2", "서울", "서울은 수도이다.")]}), FakeReader({Q: "세종대왕"}))
    assert {a.doc_id for a in memory.ask(Q, collection="c", filters={"doc_id": "d2"})} <= {"d2", ""}


def test_duplicates_merge_keeping_every_source(hits):
    qa = QA(ListRetriever(hits), FakeReader({Q: "세종대왕"}))
    answers = qa.ask(Q, collection="history")
    texts = [a.text for a in answers]
    assert texts.count("세종대왕") == 1
    best = answers[0]
    assert [s["passage_id"] for s in best.sources] == ["d1:0", "d1:1"]
    assert all(DOC[s["start"]:s["end"]] == "세종대왕" for s in best.sources)


def test_all_passages_are_read_in_one_reader_call(hits):
    reader = FakeReader({Q: "세종대왕"})
    qa = QA(ListRetriever(hits), reader)
    qa.ask(Q, collection="history", top_k_passages=2)
    assert reader.batches == [1]
    out = qa.ask_batch([Q, "반포한 해는?", "누가?"], collection="history")
    assert reader.batches == [1, 3] and len(out) == 3


def test_scores_are_calibrated_probabilities_in_rank_order(hits):
    qa = QA(ListRetriever(hits), FakeReader({Q: "세종대왕"}))
    answers = qa.ask(Q, collection="history", top_n_answers=5)
    scores = [a.score for a in answers]
    assert all(0.0 <= s <= 1.0 for s in scores) and scores == sorted(scores, reverse=True)
    assert answers[0].reader_score > answers[-1].reader_score
    assert answers[0].retrieval_score == pytest.approx(0.03)


def test_below_threshold_the_pipeline_abstains(hits):
    qa = QA(ListRetriever(hits), FakeReader({Q: "세종대왕"}), threshold=0.999)
    result = qa.run(Q, collection="history")
    assert result.no_answer and result.answers[0].text == "세종대왕"
    listed = qa.ask(Q, collection="history")
    assert listed[0].text == "" and listed[0].doc_id == ""
    assert listed[0].score == pytest.approx(1 - result.answers[0].score)
    assert listed[1].text == "세종대왕"  # the candidates still follow
    assert qa.ask(Q, collection="history", threshold=0.0)[0].text == "세종대왕"


def test_nothing_retrieved_means_no_answer():
    qa = QA(MemoryRetriever({"empty": []}), FakeReader())
    result = qa.run(Q, collection="empty")
    assert result.no_answer and result.answers == ()
    assert [a.text for a in qa.ask(Q, collection="empty")] == [""]


@pytest.mark.parametrize("kwargs, field", [
    ({"question": ""}, "question"),
    ({"question": "   "}, "question"),
    ({"question": 3}, "question"),
    ({"top_k_passages": 0}, "top_k_passages"),
    ({"top_k_passages": True}, "top_k_passages"),
    ({"top_n_answers": 51}, "top_n_answers"),
    ({"mode": "fuzzy"}, "mode"),
    ({"threshold": 1.5}, "threshold"),
])
def test_bad_arguments_name_the_field(hits, kwargs, field):
    qa = QA(ListRetriever(hits), FakeReader())
    args = {"question": Q, "collection": "history", **kwargs}
    with pytest.raises(InvalidInput) as err:
        qa.ask(**args)
    assert err.value.field == field


def test_unknown_collection_is_not_found(hits):
    with pytest.raises(NotFound):
        QA(ListRetriever(hits), FakeReader()).ask(Q, collection="nope")


def test_overlapping_spans_of_one_place_show_once(hits):
    class Greedy(FakeReader):  # reads "세종대왕" and the longer "세종대왕은" at the same place
        def _read_one(self, question, contexts, top_k, null):
            spans = super()._read_one(question, contexts, top_k, null)
            from koqa.reader.base import Span
            return spans + [Span("세종대왕은", 0, 5, 7.0, 0.3, 0.3, 0)]

    answers = QA(ListRetriever(hits), Greedy({Q: "세종대왕"})).ask(Q, collection="history")
    assert "세종대왕은" not in [a.text for a in answers]


def test_calibration_file_round_trip_and_validation(tmp_path):
    default = Calibration.for_reader("koqa:reader-small")
    assert 0.0 <= default.threshold <= 1.0 and default.features
    path = tmp_path / "cal.json"
    default.save(path)
    assert Calibration.load(path) == default
    raw = json.loads(path.read_text())
    raw["features"][0] = "vibes"
    path.write_text(json.dumps(raw))
    with pytest.raises(InvalidInput) as err:
        Calibration.load(path)
    assert err.value.field == "calibration.features"


def test_helpers_and_lazy_export():
    assert koqa.QAPipeline is QAPipeline
    assert normalize("“세종대왕”, ") == normalize("세종대왕") == "세종대왕"
    text = "가 " * 100 + "세종대왕" + " 나" * 100
    snippet = highlight(text, 200, 204)
    assert "**세종대왕**" in snippet and snippet.startswith("…") and snippet.endswith("…")


def test_aask_answers_as_ask_does(hits):
    qa = QA(ListRetriever(hits), FakeReader({Q: "세종대왕"}))
    calls = []

    async def read(questions, contexts, *, top_k, max_answer_len):  # as the API's micro-batcher reads
        calls.append(len(questions))
        return qa.reader.read_batch(questions, contexts, top_k, max_answer_len=max_answer_len)

    sync = qa.ask(Q, collection="history")
    assert asyncio.run(qa.aask(Q, collection="history")) == sync
    assert asyncio.run(qa.aask(Q, collection="history", read=read)) == sync
    assert calls == [1]


def test_calibration_is_chosen_for_the_reader_in_use(caplog):
    small = Calibration.for_reader("koqa:reader-small")
    assert small.reader == "koqa:reader-small"
    with caplog.at_level("WARNING", logger="koqa.pipeline.calibration"):
        other = Calibration.for_reader("someone/koelectra-korquad")
    assert other == FALLBACK and "no calibration was fitted for reader 'someone/koelectra-korquad'" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING", logger="koqa.pipeline.calibration"):
        qa = QAPipeline(MemoryRetriever({"c": []}), FakeReader(), calibration=small)
    assert qa.calibration is small and "fitted for reader 'koqa:reader-small' is used with reader 'fake-reader'" in caplog.text
