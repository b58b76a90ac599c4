"""Fitting the combined confidence: logistic regression, metrics, the collection of labelled examples."""

from __future__ import annotations

import math
import random

import pytest

from koqa.pipeline import Calibration, QAPipeline
from koqa.training.calibrate import Example, article_documents, article_questions, calibrate, collect, fit, metrics
from koqa.pipeline.calibration import FEATURES
from koqa.pipeline.fakes import FakeReader, MemoryRetriever


def synthetic(n=2000, seed=0):
    """Label ~ Bernoulli(sigmoid(6·reader_prob − 3)): a fit should find that and be calibrated."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        prob = rng.random()
        feats = {f: rng.gauss(0, 1) for f in FEATURES} | {"reader_prob": prob}
        label = int(rng.random() < 1 / (1 + math.exp(-(6 * prob - 3))))
        out.append(Example(f"q{i}", 1, feats, label))
    return out


def test_fit_recovers_the_generating_weights():
    weights, bias = fit(synthetic(), l2=0.1)
    w = dict(zip(FEATURES, weights))
    assert w["reader_prob"] == pytest.approx(6.0, abs=1.0)
    assert bias == pytest.approx(-3.0, abs=0.6)
    assert all(abs(v) < 0.3 for k, v in w.items() if k != "reader_prob")


def test_calibrate_reports_heldout_metrics_and_round_trips(tmp_path):
    cal = calibrate(synthetic(), threshold=0.4, fitted_on="synthetic")
    assert cal.metrics["heldout_ece"] < 0.06
    assert cal.metrics["heldout_auc"] > 0.75
    assert 0 < cal.metrics["heldout_coverage_at_threshold"] < 1
    cal.save(tmp_path / "c.json")
    assert Calibration.load(tmp_path / "c.json").threshold == 0.4
    m = metrics(cal, synthetic(500, seed=1))
    assert m["brier"] < 0.25


def test_collect_labels_candidates_with_the_official_f1():
    articles = [{"title": "세종_대왕", "paragraphs": [
        {"context": "세종대왕은 1443년 훈민정음을 창제하였다.",
         "qas": [{"id": "1", "question": "훈민정음을 만든 왕은?", "answers": [{"text": "세종대왕", "answer_start": 0}]},
                 {"id": "2", "question": "창제한 해는?", "answers": [{"text": "1443년", "answer_start": 6}]}]}]}]
    docs, questions = article_documents(articles), article_questions(articles)
    assert docs[0].id == "korquad-000" and docs[0].title == "세종 대왕"
    assert [q.doc_id for q in questions] == ["korquad-000", "korquad-000"]
    retriever = MemoryRetriever({"kq": [(d.id, d.title, d.text) for d in docs]})
    reader = FakeReader({"훈민정음을 만든 왕은?": "세종대왕", "창제한 해는?": "훈민정음을"})
    examples = collect(QAPipeline(retriever, reader, depth=None), questions, "kq")
    by_q = {(e.qid, e.rank): e for e in examples}
    assert by_q[("1", 1)].label == 1 and by_q[("2", 1)].label == 0
    assert set(by_q[("1", 1)].features) == set(FEATURES)
    assert reader.batches == [2]  # both questions in one reader call


@pytest.mark.slow
def test_calibrate_command_end_to_end(shared_dir, tiny_model_dir, tmp_path, monkeypatch, capsys):
    from koqa.training.calibrate import main

    monkeypatch.setenv("KOQA_HOME", str(tmp_path))
    out = tmp_path / "calibration.json"
    main(["--korquad", str(shared_dir / "data" / "korquad" / "KorQuAD_v1.0_dev.json.gz"), "--reader",
          str(tiny_model_dir), "--embedder", "fake", "--limit", "6", "--corpus", "questions", "--top-k", "3", "--read-first", "1",
          "--out", str(out)])
    cal = Calibration.load(out)
    assert cal.features == FEATURES and cal.metrics["questions"] == 6
    assert "6 questions" in cal.fitted_on and "wrote" in capsys.readouterr().out
    assert cal.read_first == 1 and cal.first_pass is not None and "first 1 passages" in cal.first_pass.fitted_on
