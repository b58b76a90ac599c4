"""The official KorQuAD 1.0 metric, the fixed dev split and SQuAD-layout loading."""

import gzip
import json
import zipfile

import pytest

from koqa.training.korquad import (evaluate, exact_match, f1_score, iter_examples, load_squad, normalize_answer,
                                 read_train_spec, split_korquad)


@pytest.fixture(scope="module")
def korquad_dev(shared_dir):
    return load_squad(shared_dir / "data" / "korquad" / "KorQuAD_v1.0_dev.json.gz")


def test_all_official_metric_cases(shared_dir):
    cases = json.loads((shared_dir / "data" / "korquad" / "metric_cases_official_eval.json").read_text())
    assert len(cases) == 24
    for c in cases:
        assert normalize_answer(c["prediction"]) == c["normalized_prediction"]
        assert normalize_answer(c["ground_truth"]) == c["normalized_ground_truth"]
        assert exact_match(c["prediction"], c["ground_truth"]) == c["exact_match"]
        assert f1_score(c["prediction"], c["ground_truth"]) == pytest.approx(c["f1"], abs=1e-6)


def test_reference_perturbed_predictions(korquad_dev):
    """The deterministic perturbation of SOURCE.md scores exactly what the official script gives."""
    golds, preds, i = {}, {}, 0
    for art in korquad_dev["data"]:
        for para in art["paragraphs"]:
            for qa in para["qas"]:
                g = qa["answers"][0]["text"]
                golds[qa["id"]] = [a["text"] for a in qa["answers"]]
                k = i % 7
                p = [g, g + "이다", g[: max(1, len(g) // 2)], "《" + g.replace(" ", "  ") + "》.",
                     para["context"][:5], "“" + g + "”", " " + g.upper() + " "][k]
                if not (k == 6 and i % 14 == 13):
                    preds[qa["id"]] = p
                i += 1
    assert len(preds) == 5362
    got = evaluate(golds, preds)
    assert got["exact_match"] == pytest.approx(36.21406304121926, abs=1e-9)
    assert got["f1"] == pytest.approx(68.97960340078679, abs=1e-9)
    assert evaluate(golds, {q: a[0] for q, a in golds.items()}) == {"exact_match": 100.0, "f1": 100.0}


def test_fixed_article_split(korquad_dev):
    train, evals = split_korquad(korquad_dev)
    assert len(train) == 100 and len(evals) == 40
    assert train[0] is korquad_dev["data"][0] and evals[-1] is korquad_dev["data"][-1]
    assert not {a["title"] for a in train} & {a["title"] for a in evals}


def test_mismatched_answers_are_dropped_and_counted(tmp_path):
    data = {"data": [{"title": "t", "paragraphs": [{"context": "서울은 수도이다.", "qas": [
        {"id": "1", "question": "수도?", "answers": [{"text": "서울", "answer_start": 0}]},
        {"id": "2", "question": "수도?", "answers": [{"text": "서울", "answer_start": 3}]},
    ]}]}]}
    examples, dropped = iter_examples(data["data"])
    assert [e.id for e in examples] == ["1"] and dropped == 1
    path = tmp_path / "d.json.gz"
    with gzip.open(path, "wt", encoding="utf-8") as f:
        json.dump(data, f)
    assert read_train_spec(str(path))[1] == 1
    assert len(read_train_spec(f"{path}:1")[0]) == 1


def test_jsonl_zip_is_read(tmp_path):
    path = tmp_path / "thai.zip"
    rec = {"question_id": "q", "question": "?", "context": "กรุงเทพ", "title": "t",
           "answers": {"text": ["กรุงเทพ"], "answer_start": [0]}}
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("train.jsonl", json.dumps(rec) + "\n")
    examples, dropped = iter_examples(load_squad(path)["data"])
    assert examples[0].answers == (("กรุงเทพ", 0),) and dropped == 0
