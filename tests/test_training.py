"""`koqa train` on a tiny random model: labels, distractors, determinism, resume, loadable output."""

from __future__ import annotations

import json

import numpy as np
import pytest

from koqa.training.features import add_distractors, build_features
from koqa.training.korquad import QAExample, read_train_spec
from koqa.training.train import TrainConfig, train

CONTEXTS = ["세종대왕은 1443년에 훈민정음을 창제하였다.", "이순신은 한산도 대첩에서 학익진을 펼쳤다.",
            "경복궁은 1395년에 지어진 조선의 정궁이다.", "한강은 서울을 가로질러 황해로 흘러간다."]
QAS = [("훈민정음을 창제한 왕은?", "세종대왕"), ("이순신이 한산도에서 펼친 진은?", "학익진"),
       ("경복궁이 지어진 해는?", "1395년"), ("서울을 가로지르는 강은?", "한강")]


@pytest.fixture()
def squad_file(tmp_path):
    paragraphs = [{"context": c, "qas": [{"id": str(i), "question": q, "answers": [{"text": a, "answer_start": c.index(a)}]}]}
                  for i, (c, (q, a)) in enumerate(zip(CONTEXTS, QAS))]
    path = tmp_path / "tiny.json"
    path.write_text(json.dumps({"data": [{"title": "역사", "paragraphs": paragraphs}]}, ensure_ascii=False))
    return path


def test_features_label_the_answer_tokens_and_distractors_with_cls(tiny_model_dir, squad_file):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    examples, dropped = read_train_spec(str(squad_file))
    mixed = add_distractors(examples, 1.0, seed=0)
    assert dropped == 0 and len(mixed) == 2 * len(examples)
    assert all(not any(a in n.context for a in n.answer_texts) for n in mixed[len(examples):])
    feats = build_features(tok, mixed, max_seq_len=64, doc_stride=32, progress=False)
    for f, e in zip(feats[: len(examples)], examples):
        text, start = e.answers[0]
        s, t = f.window.offsets[f.start][0], f.window.offsets[f.end][1]
        assert (s, t) == (start, start + len(text))
    assert all((f.start, f.end) == (0, 0) for f in feats[len(examples):])


def test_distractors_fall_back_to_other_articles():
    ex = [QAExample("1", "q", "서울은 수도이다.", (("서울", 0),), "a"), QAExample("2", "q", "한강이 흐른다.", (("한강", 0),), "b")]
    negs = add_distractors(ex, 1.0)[2:]
    assert [n.context for n in negs] == ["한강이 흐른다.", "서울은 수도이다."]


def _weights(folder):
    from safetensors.numpy import load_file

    return load_file(str(folder / "model.safetensors"))


def test_train_resumes_to_the_same_weights_and_loads_as_a_reader(tiny_model_dir, squad_file, tmp_path, monkeypatch):
    from koqa.reader import QAReader
    from koqa.training import train as training

    common = dict(base=str(tiny_model_dir), train=(str(squad_file),), epochs=3, lr=1e-3, batch_size=2,
                  max_seq_len=64, doc_stride=32, checkpoint_every=2, threads=1, distractors=0.5)
    full = train(TrainConfig(out=str(tmp_path / "full"), **common), log=lambda m: None)
    assert full["features"] > 4 and full["steps"] == 3 * -(-full["features"] // 2)  # distractors add windows

    # a run killed right after its step-4 checkpoint, then started again, ends where the uninterrupted one did
    save = training._save_checkpoint

    def save_then_die(out, model, opt, sched, step, *rest):
        save(out, model, opt, sched, step, *rest)
        if step == 4:
            raise KeyboardInterrupt

    monkeypatch.setattr(training, "_save_checkpoint", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        train(TrainConfig(out=str(tmp_path / "cut"), **common), log=lambda m: None)
    monkeypatch.setattr(training, "_save_checkpoint", save)
    logs = []
    resumed = train(TrainConfig(out=str(tmp_path / "cut"), **common), log=logs.append)
    assert "resuming from step 4" in logs and resumed["steps"] == full["steps"]
    a, b = _weights(tmp_path / "full"), _weights(tmp_path / "cut")
    assert all(np.allclose(a[k], b[k], atol=1e-5) for k in a)

    reader = QAReader.from_pretrained(str(tmp_path / "full"), device="cpu", backend="torch-fp32", trim_particles=False)
    spans = reader.read(QAS[0][0], CONTEXTS[0])
    assert spans and CONTEXTS[0][spans[0].start:spans[0].end] == spans[0].text


def test_a_checkpoint_with_other_settings_is_refused(tiny_model_dir, squad_file, tmp_path):
    from koqa.errors import InvalidInput

    cfg = TrainConfig(base=str(tiny_model_dir), train=(str(squad_file),), out=str(tmp_path / "o"), epochs=1, batch_size=2,
                      max_seq_len=64, doc_stride=32, checkpoint_every=1, threads=1, max_steps=1)
    train(cfg, log=lambda m: None)
    with pytest.raises(InvalidInput, match="other settings"):
        train(TrainConfig(**{**cfg.__dict__, "lr": 1e-3, "max_steps": 2}), log=lambda m: None)


def test_trained_example_ids_replays_the_data_order(tiny_model_dir, squad_file, tmp_path):
    from koqa.training.train import trained_example_ids

    cfg = TrainConfig(base=str(tiny_model_dir), train=(str(squad_file),), out=str(tmp_path / "o"), epochs=1, batch_size=2,
                      max_seq_len=64, doc_stride=32, threads=1, max_steps=1)
    train(cfg, log=lambda m: None)
    seen = trained_example_ids(tmp_path / "o")
    assert len(seen) == 2 and seen <= {"0", "1", "2", "3"}  # one batch of two questions
    train(TrainConfig(**{**cfg.__dict__, "max_steps": 2}), log=lambda m: None)
    assert trained_example_ids(tmp_path / "o") == {"0", "1", "2", "3"}


def test_a_shrunk_student_distils_from_its_teacher(tiny_model_dir, squad_file, tmp_path):
    from koqa.errors import InvalidInput
    from koqa.models.shrink import layer_map, shrink_layers
    from koqa.reader import QAReader

    student = shrink_layers(tiny_model_dir, tmp_path / "student", keep=[1])
    s, t = _weights(student), _weights(tiny_model_dir)
    assert np.array_equal(s["electra.encoder.layer.0.output.dense.weight"], t["electra.encoder.layer.1.output.dense.weight"])
    assert not any(".layer.1." in k for k in s)
    assert layer_map(json.loads((student / "config.json").read_text())) == {0: 1}
    with pytest.raises(InvalidInput, match="keep"):
        shrink_layers(tiny_model_dir, tmp_path / "bad", keep=[1, 0])

    cfg = TrainConfig(base=str(student), train=(str(squad_file),), out=str(tmp_path / "o"), epochs=2, lr=1e-3,
                      batch_size=2, max_seq_len=64, doc_stride=32, threads=1, teacher=str(tiny_model_dir),
                      distill_hidden=1.0)
    summary = train(cfg, log=lambda m: None)
    assert np.isfinite(summary["final_loss"])
    assert QAReader.from_pretrained(str(tmp_path / "o"), device="cpu", backend="torch-fp32").read(QAS[1][0], CONTEXTS[1])


def test_a_teacher_with_another_vocabulary_is_refused(tiny_model_dir, squad_file, tmp_path):
    from transformers import BertConfig, BertForQuestionAnswering

    from koqa.errors import InvalidInput

    BertForQuestionAnswering(BertConfig(vocab_size=50, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                                        intermediate_size=64)).save_pretrained(tmp_path / "teacher")
    cfg = TrainConfig(base=str(tiny_model_dir), train=(str(squad_file),), out=str(tmp_path / "o"), max_steps=1,
                      batch_size=2, max_seq_len=64, doc_stride=32, threads=1, teacher=str(tmp_path / "teacher"))
    with pytest.raises(InvalidInput, match="teacher.*vocabulary"):
        train(cfg, log=lambda m: None)


def test_distillation_settings_are_checked():
    from koqa.errors import InvalidInput

    for bad in ({"distill_weight": 1.5}, {"distill_temperature": 0.0}, {"distill_hidden": -1.0}, {"augment": 1.0}):
        with pytest.raises(InvalidInput, match=next(iter(bad))):
            TrainConfig(base="b", train=("t",), out="o", teacher="t", **bad)


def test_augmentation_replaces_only_context_tokens_outside_the_answer(tiny_model_dir, squad_file):
    import torch
    from transformers import AutoTokenizer

    from koqa.training.distill import replace_context_tokens
    from koqa.reader.windows import pad_batch

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    feats = build_features(tok, read_train_spec(str(squad_file))[0], max_seq_len=64, doc_stride=32, progress=False)
    ids = torch.from_numpy(pad_batch([f.window for f in feats], tok.pad_token_id)["input_ids"])
    torch.manual_seed(0)
    new = replace_context_tokens(ids, feats, 0.5)
    changed = (new != ids).numpy()
    context = np.zeros(ids.shape, dtype=bool)
    for r, f in enumerate(feats):
        context[r, : len(f.window)] = f.window.is_context
    assert changed.any()
    assert set(new.numpy()[changed].tolist()) <= set(ids.numpy()[context].tolist())  # drawn from the batch's context
    for r, f in enumerate(feats):
        free = context[r].copy()
        free[f.start : f.end + 1] = False
        assert not changed[r][~free].any()  # question, specials, padding and the gold span stay
    assert torch.equal(replace_context_tokens(ids, feats, 0.0), ids)
