"""QAPipeline with the real parts: a real store (fake embedder) and the real reader code (tiny random model)."""

from __future__ import annotations

import functools

import pytest
from test_api import chunker, store  # noqa: F401  (fixtures: the samples in a real store)

from koqa.pipeline import QAPipeline
from koqa.pipeline.fakes import handset_calibration


QA = functools.partial(QAPipeline, calibration=handset_calibration())  # not the packaged weights


class CountingReader:
    """Passes through to the real reader, counting ``read_batch`` calls."""

    def __init__(self, reader):
        self.reader, self.calls = reader, []

    def read_batch(self, questions, contexts, top_k=1, **options):
        self.calls.append((len(questions), [len(c) for c in contexts]))
        return self.reader.read_batch(questions, contexts, top_k, **options)


@pytest.fixture
def pipeline(store, tiny_reader):
    return QA(store, CountingReader(tiny_reader))


QUESTIONS = ["훈민정음을 창제한 왕은 누구인가?", "명량 해전에서 이순신이 이끈 배는 몇 척이었나?", "재택근무는 주 몇 회까지 할 수 있나?"]


def test_every_answer_and_source_points_into_its_stored_document(pipeline, store):
    result = pipeline.run(QUESTIONS[0], "history", top_k_passages=5, top_n_answers=5)
    assert result.answers and len(pipeline.reader.calls) == 1
    assert pipeline.reader.calls[0] == (1, [len(result.hits)])  # all passages, one call
    texts = {}
    for a in result.answers:
        for src in a.sources:
            doc = texts.setdefault(src["doc_id"], store.get_document("history", src["doc_id"]).text)
            assert doc[src["start"]:src["end"]] == a.text
        assert (a.start, a.end, a.doc_id) == (a.sources[0]["start"], a.sources[0]["end"], a.sources[0]["doc_id"])
        assert "".join(a.text.split()) in "".join(a.context.replace("**", "").split())
    assert len({a.text for a in result.answers}) == len(result.answers)


def test_ask_batch_reads_everything_in_one_call_and_matches_single_asks(pipeline):
    batch = pipeline.run_batch(QUESTIONS, "history", top_k_passages=4)
    assert len(pipeline.reader.calls) == 1 and pipeline.reader.calls[0][0] == 3
    for q, r in zip(QUESTIONS, batch):
        single = pipeline.run(q, "history", top_k_passages=4)
        assert [a.text for a in single.answers[:3]] == [a.text for a in r.answers[:3]]
        assert single.answers[0].score == pytest.approx(r.answers[0].score, abs=1e-4)
