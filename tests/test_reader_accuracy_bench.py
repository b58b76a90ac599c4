"""bench/reader_accuracy.py: every set given, with and without trimming, from one prediction pass."""

from __future__ import annotations

import json
import runpy
from pathlib import Path

import pytest

from koqa.reader.base import Span
from koqa.training.korquad import QAExample

BENCH = runpy.run_path(str(Path(__file__).resolve().parents[1] / "bench" / "reader_accuracy.py"))

CONTEXTS = ["세종대왕은 1443년에 훈민정음을 창제하였다.", "이순신 장군은 한산도에서 왜군을 크게 물리쳤다.",
            "서울은 대한민국의 수도이다."]
QAS = [("훈민정음을 창제한 왕은?", "세종대왕"), ("한산도에서 왜군을 물리친 장군은?", "이순신 장군"), ("대한민국의 수도는?", "서울")]


def _squad(path: Path) -> Path:
    paragraphs = [{"context": c, "qas": [{"id": f"q{i}", "question": q, "answers": [{"text": a, "answer_start": c.index(a)}]}]}
                  for i, (c, (q, a)) in enumerate(zip(CONTEXTS, QAS))]
    path.write_text(json.dumps({"data": [{"title": "역사", "paragraphs": paragraphs}]}, ensure_ascii=False), encoding="utf-8")
    return path


def test_set_names_and_files_of_data_specs():
    assert BENCH["set_name"]("korquad-eval:/d/KorQuAD_v1.0_dev.json.gz:300") == "korquad-eval:300"
    assert BENCH["set_name"]("tydi-dev:/d/tydi.json") == "tydi-dev"
    assert BENCH["set_name"]("/d/mine.json") == "mine.json"
    assert BENCH["spec_file"]("korquad-eval:/d/k.json.gz:300") == Path("/d/k.json.gz")
    assert BENCH["spec_file"]("/d/mine.json:5") == Path("/d/mine.json")


class _WholeWord:
    """Answers with the first word of the context, particle included (세종대왕은)."""

    def read_batch(self, questions, contexts, top_k=1):
        return [[Span(c[0].split()[0], 0, len(c[0].split()[0]), 0.0, 1.0, 1.0)] for c in contexts]


def test_trimming_is_applied_to_the_same_pass():
    from koqa.text.particles import ParticleTrimmer

    examples = [QAExample("a", QAS[0][0], CONTEXTS[0], (("세종대왕", 0),)),
                QAExample("b", QAS[2][0], CONTEXTS[2], (("서울", 0),))]
    row = BENCH["score_set"](_WholeWord(), examples, ParticleTrimmer.load())
    assert row["questions"] == 2 and row["exact_match"] == 100.0 and row["exact_match_no_trim"] == 0.0
    assert row["f1"] == 100.0 and 0 < row["f1_no_trim"] < 100


def test_main_reports_every_reader_on_every_set(tiny_model_dir, tmp_path, capsys):
    data = _squad(tmp_path / "tiny_squad.json")
    out = tmp_path / "acc.json"
    result = BENCH["main"](["--reader", str(tiny_model_dir), "--reader", str(tiny_model_dir),
                            "--data", str(data), "--data", f"{data}:2", "--out", str(out)])
    assert json.loads(out.read_text(encoding="utf-8")) == result
    assert result["backend"] == "torch-fp32" and len(result["rows"]) == 4
    keys = {"reader", "set", "spec", "questions", "dropped_answers", "exact_match", "f1",
            "exact_match_no_trim", "f1_no_trim", "seconds"}
    for row in result["rows"]:
        assert set(row) == keys and row["reader"] == str(tiny_model_dir)
        assert all(0 <= row[k] <= 100 for k in ("exact_match", "f1", "exact_match_no_trim", "f1_no_trim"))
    assert [(r["set"], r["questions"]) for r in result["rows"]] == [("tiny_squad.json", 3), ("tiny_squad.json:2", 2)] * 2
    table = capsys.readouterr().out
    assert "EM no-trim" in table and "tiny_squad.json:2" in table


def test_a_missing_data_file_is_named(tmp_path, capsys):
    with pytest.raises(SystemExit):
        BENCH["main"](["--data", f"tydi-dev:{tmp_path / 'nope.json'}", "--out", str(tmp_path / "x.json")])
    assert "nope.json is not a readable file" in capsys.readouterr().err
