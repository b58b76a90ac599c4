"""The TyDi train/dev split is by passage and the same on every run."""

import json

from koqa.training.tydi import tydi_splits, write_tydi_splits


def _data(n=50):
    return {"version": "x", "data": [{"title": f"t{i}", "paragraphs": [
        {"context": f"문단 {i % 20}", "qas": [{"id": str(i), "question": "?", "answers": []}]}]} for i in range(n)]}


def _contexts(part):
    return {p["context"] for a in part["data"] for p in a["paragraphs"]}


def test_split_is_by_passage_deterministic_and_complete(tmp_path):
    train, dev = tydi_splits(_data())
    assert not _contexts(train) & _contexts(dev) and len(_contexts(dev)) == 4
    ids = lambda part: [q["id"] for a in part["data"] for p in a["paragraphs"] for q in p["qas"]]  # noqa: E731
    assert sorted(ids(train) + ids(dev), key=int) == [str(i) for i in range(50)]
    assert tydi_splits(_data()) == (train, dev)
    src = tmp_path / "src.json"
    src.write_text(json.dumps(_data()))
    t, d = write_tydi_splits(src, tmp_path / "out")
    assert json.loads(d.read_text()) == dev and json.loads(t.read_text()) == train


def test_tydi_specs_name_the_parts(tmp_path):
    from koqa.training.korquad import read_train_spec

    data = _data()
    for a in data["data"]:
        for p in a["paragraphs"]:
            p["qas"][0]["answers"] = [{"text": "문단", "answer_start": 0}]
    src = tmp_path / "tydi.json"
    src.write_text(json.dumps(data))
    train, _ = read_train_spec(f"tydi-train:{src}")
    dev, _ = read_train_spec(f"tydi-dev:{src}")
    assert len(train) + len(dev) == 50 and not {e.context for e in train} & {e.context for e in dev}
