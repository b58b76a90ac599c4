"""Adaptive reading depth: the best passages first, the rest only when the answer is not decisive."""

from __future__ import annotations

import functools

from pathlib import Path

import pytest

from koqa.errors import InvalidInput
from koqa.pipeline import QAPipeline
from koqa.pipeline.depth import ReadingDepth, merge_stages
from koqa.pipeline.fakes import FakeReader, MemoryRetriever, handset_calibration


QA = functools.partial(QAPipeline, calibration=handset_calibration())  # not the packaged weights

SAMPLES = Path(__file__).resolve().parents[1] / "samples"
Q = "훈민정음을 창제한 왕은 누구인가?"


class Recorder(FakeReader):
    """A FakeReader that also records how many passages each question got per call."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.contexts = []

    def read_batch(self, questions, contexts, top_k=1, **options):
        self.contexts.append([len(c) for c in contexts])
        return super().read_batch(questions, contexts, top_k, **options)


def retriever():
    docs = [(f"d{i}", f"문서 {i}", f"세종대왕 {i}번째 이야기: 훈민정음을 창제한 왕") for i in range(6)]
    return MemoryRetriever({"h": docs})


def test_a_decisive_first_pass_stops_reading():
    reader = Recorder({Q: "세종대왕"})
    qa = QA(retriever(), reader, depth=ReadingDepth(first=2, stop_confidence=0.5))
    result = qa.run(Q, "h", top_k_passages=6)
    assert reader.contexts == [[2]] and result.timings["passages_read"] == 2
    assert result.answers[0].text == "세종대왕" and len(result.hits) == 6


def test_an_undecided_question_reads_the_rest_and_batches_stay_shared():
    reader = Recorder({Q: "세종대왕"})
    qa = QA(retriever(), reader, depth=ReadingDepth(first=2, stop_confidence=1.0))  # never decisive
    results = qa.run_batch([Q, Q], "h", top_k_passages=6)
    assert reader.contexts == [[2, 2], [4, 4]]  # two calls in all, each for both questions
    assert all(r.timings["passages_read"] == 6 for r in results)
    full = QA(retriever(), FakeReader({Q: "세종대왕"}), depth=None).run(Q, "h", top_k_passages=6)  # all at once
    staged = results[0]
    assert [a.text for a in staged.answers] == [a.text for a in full.answers]
    assert [len(a.sources) for a in staged.answers] == [len(a.sources) for a in full.answers]
    assert staged.answers[0].score == pytest.approx(full.answers[0].score, rel=0.05)  # fake probs: not 2 softmaxes


def test_two_passes_give_the_probabilities_of_one_joint_read(tiny_reader):
    contexts = [p for f in ("hunminjeongeum.md", "seoul.md", "yi_sun_sin.md")
                for p in (SAMPLES / f).read_text(encoding="utf-8").split("\n\n") if p.strip()]
    joint = {(s.context_index, s.start, s.end): s for s in tiny_reader.read(Q, contexts, top_k=60)}
    merged = merge_stages(tiny_reader.read(Q, contexts[:4], top_k=60), tiny_reader.read(Q, contexts[4:], top_k=60),
                          offset=4, top_k=60)
    common = [s for s in merged if (s.context_index, s.start, s.end) in joint]
    assert len(common) >= 40
    for s in common:
        j = joint[(s.context_index, s.start, s.end)]
        assert s.score == pytest.approx(j.score, abs=1e-3)
        assert s.prob == pytest.approx(j.prob, rel=0.05)


def test_depth_settings_are_checked():
    assert ReadingDepth(first=5).stages(3) == [(0, 3)]
    assert ReadingDepth(first=5).stages(20) == [(0, 5), (5, 20)]
    with pytest.raises(InvalidInput):
        ReadingDepth(first=0)
    with pytest.raises(InvalidInput):
        ReadingDepth(stop_confidence=2.0)


def test_the_stop_rule_uses_the_first_pass_model(tmp_path):
    from koqa.pipeline import Calibration
    from koqa.pipeline.calibration import FEATURES

    sure = Calibration(FEATURES, (0.0,) * len(FEATURES), 10.0)
    unsure = Calibration(FEATURES, (0.0,) * len(FEATURES), -10.0)
    for main, first, calls in [(unsure, sure, [[2]]), (sure, unsure, [[2], [4]])]:
        cal = Calibration(FEATURES, main.weights, main.bias, first_pass=first, read_first=2)
        cal.save(tmp_path / "c.json")
        assert Calibration.load(tmp_path / "c.json") == cal
        reader = Recorder({Q: "세종대왕"})
        QA(retriever(), reader, calibration=cal, depth=ReadingDepth(first=2, stop_confidence=0.5)).run(
            Q, "h", top_k_passages=6)
        assert reader.contexts == calls
