"""Reader deltas: make/apply round trips on a tiny random BERT (fast, no real models)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from koqa.errors import ModelUnavailable
from koqa.models.delta import DELTA_FILE, MANIFEST, apply_delta, load_weights, make_delta
from koqa.models.delta_codecs import decode, encode

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")


def tiny_base(folder, seed=0):
    """A tiny fp16 BertModel (no pooler) with a tokenizer file, like the real base folder."""
    torch.manual_seed(seed)
    cfg = transformers.BertConfig(vocab_size=50, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                  intermediate_size=64, max_position_embeddings=64)
    transformers.BertModel(cfg, add_pooling_layer=False).half().save_pretrained(folder)
    (folder / "tokenizer.json").write_text('{"fake": "tokenizer"}')
    return folder


def tune(base_dir, out_dir, *, layers=("encoder.layer.1",), lowrank_query=False, seed=1):
    """A BertForQuestionAnswering from ``base_dir`` with ``layers`` perturbed (like fine-tuning)."""
    torch.manual_seed(seed)
    qa = transformers.BertForQuestionAnswering.from_pretrained(base_dir, dtype=torch.float32)
    with torch.no_grad():
        for name, p in qa.named_parameters():
            if any(layer + "." in name for layer in layers):
                p.add_(torch.randn_like(p) * 1e-3)
            if lowrank_query and name.endswith("layer.0.attention.self.query.weight"):
                p.add_(torch.randn(32, 2) @ torch.randn(2, 32) * 1e-2)  # a merged rank-2 LoRA
    qa.save_pretrained(out_dir)
    return qa


@pytest.fixture()
def models(tmp_path):
    base = tiny_base(tmp_path / "base")
    tune(base, tmp_path / "tuned", lowrank_query=True)
    return base, tmp_path / "tuned"


def test_round_trip_is_exact_where_promised_and_bounded_elsewhere(models, tmp_path):
    base, tuned = models
    report = make_delta(base, tuned, tmp_path / "delta")
    out = apply_delta(base, tmp_path / "delta", tmp_path / "out")
    got, want, base_w = load_weights(out), load_weights(tuned), load_weights(base)
    assert set(got) == set(want)
    manifest = json.loads((tmp_path / "delta" / MANIFEST).read_text())
    by_name = {e["name"]: e for e in manifest["tensors"]}
    for name, w in want.items():
        err = float(np.abs(got[name] - w).max())
        assert err <= by_name[name]["max_abs_error"] + 1e-12, name
        if by_name[name]["method"] in ("base", "fp32"):
            assert err == 0.0, name
    assert by_name["qa_outputs.weight"]["method"] == "fp32"  # a new head is stored whole
    assert by_name["bert.encoder.layer.0.attention.self.key.weight"]["method"] == "base"
    assert by_name["bert.encoder.layer.0.attention.self.query.weight"]["method"] == "lowrank"
    assert by_name["bert.encoder.layer.1.intermediate.dense.weight"]["method"] == "int8"
    assert by_name["bert.embeddings.word_embeddings.weight"]["base"] == "embeddings.word_embeddings.weight"
    assert 0 < report.max_abs_error < 1e-4
    assert report.size_bytes < sum(w.nbytes for w in base_w.values()) / 2
    print(f"tiny delta: {report.size_bytes} B, max |weight error| {report.max_abs_error:.3g}, {report.methods}")


def test_apply_is_deterministic_and_writes_a_normal_folder(models, tmp_path):
    base, tuned = models
    make_delta(base, tuned, tmp_path / "delta")
    a = apply_delta(base, tmp_path / "delta", tmp_path / "a")
    b = apply_delta(base, tmp_path / "delta", tmp_path / "b")
    assert (a / "model.safetensors").read_bytes() == (b / "model.safetensors").read_bytes()
    assert (a / "tokenizer.json").read_text() == '{"fake": "tokenizer"}'  # tokenizer from the base
    assert json.loads((a / "config.json").read_text())["architectures"] == ["BertForQuestionAnswering"]
    model = transformers.AutoModelForQuestionAnswering.from_pretrained(a)
    want = transformers.AutoModelForQuestionAnswering.from_pretrained(tuned)
    ids = torch.tensor([[0, 5, 7, 9, 11, 2]])
    with torch.no_grad():
        got_out, want_out = model(input_ids=ids), want(input_ids=ids)
    assert torch.allclose(got_out.start_logits, want_out.start_logits, atol=1e-3)
    assert torch.equal(got_out.start_logits.argmax(-1), want_out.start_logits.argmax(-1))


def test_model_card_is_kept_and_copied(models, tmp_path):
    base, tuned = models
    (tmp_path / "delta").mkdir()
    (tmp_path / "delta" / "README.md").write_text("# card")
    make_delta(base, tuned, tmp_path / "delta")
    assert (tmp_path / "delta" / "README.md").read_text() == "# card"
    out = apply_delta(base, tmp_path / "delta", tmp_path / "out")
    assert (out / "README.md").read_text() == "# card"


def test_damaged_delta_and_wrong_base_are_refused(models, tmp_path):
    base, tuned = models
    make_delta(base, tuned, tmp_path / "delta")
    other = tiny_base(tmp_path / "other", seed=7)
    with pytest.raises(ModelUnavailable, match="not the base"):
        apply_delta(other, tmp_path / "delta", tmp_path / "x")
    data = bytearray((tmp_path / "delta" / DELTA_FILE).read_bytes())
    data[-1] ^= 0xFF
    (tmp_path / "delta" / DELTA_FILE).write_bytes(bytes(data))
    with pytest.raises(ModelUnavailable, match="damaged"):
        apply_delta(base, tmp_path / "delta", tmp_path / "y")
    with pytest.raises(ModelUnavailable, match="missing"):
        apply_delta(base, tmp_path / "nowhere", tmp_path / "z")


def test_int8_codec_stores_only_changed_rows():
    rng = np.random.default_rng(0)
    base = rng.normal(size=(100, 16)).astype("f4")
    tuned = base.copy()
    tuned[[3, 50]] += rng.normal(size=(2, 16)).astype("f4") * 0.01
    method, parts, err = encode("emb", tuned, base)
    assert method == "int8" and parts["emb:q"].shape == (2, 16)
    assert np.abs(decode("emb", method, parts, base, tuned.shape) - tuned).max() <= err
    assert err <= 0.01 * np.abs(tuned - base).max()  # half a step of 1/127 of the row range


def test_unchanged_and_new_tensors():
    x = np.ones((4, 4), "f4")
    assert encode("w", x, x)[0] == "base"
    assert encode("w", x, None)[0] == "fp32"
    assert encode("w", x, np.ones((2, 4), "f4"))[0] == "fp32"  # shape change: stored whole
    assert encode("b", x[0] * 2, x[0])[0] == "fp32"  # 1-D: exact value


def test_int4_halves_int8_with_bounded_error():
    rng = np.random.default_rng(1)
    base = rng.normal(size=(48, 128)).astype("f4")
    tuned = base + rng.normal(size=base.shape).astype("f4") * 1e-3
    m8, p8, e8 = encode("w", tuned, base, bits=8)
    m4, p4, e4 = encode("w", tuned, base, bits=4)
    assert (m8, m4) == ("int8", "int4")
    assert sum(p.nbytes for p in p4.values()) < 0.6 * sum(p.nbytes for p in p8.values())
    decoded = decode("w", m4, p4, base, tuned.shape)
    assert np.abs(decoded - tuned).max() <= e4 <= np.abs(tuned - base).max() / 14 + 1e-9
    assert e8 < e4


def test_mixed_precision_uses_int4_only_where_its_error_fits():
    rng = np.random.default_rng(2)
    base = rng.normal(size=(32, 128)).astype("f4")
    small = base + rng.normal(size=base.shape).astype("f4") * 1e-4  # changed little
    large = base + rng.normal(size=base.shape).astype("f4") * 1e-2
    tol = encode("w", large, base)[2]  # the int8 error of the larger change
    assert encode("w", small, base, int4_within=tol)[0] == "int4"
    method, _, err = encode("w", large, base, int4_within=tol)
    assert (method, err) == ("int8", tol)


def test_make_delta_rejects_other_bit_widths(models, tmp_path):
    from koqa.errors import InvalidInput

    with pytest.raises(InvalidInput, match="bits"):
        make_delta(*models, tmp_path / "d", bits=3)
    with pytest.raises(InvalidInput, match="int4_within"):
        make_delta(*models, tmp_path / "d", int4_within=-1.0)


def test_a_shrunk_model_is_a_delta_on_the_layers_it_came_from(tmp_path):
    from koqa.models.shrink import shrink_layers

    base = tiny_base(tmp_path / "base")
    tune(base, tmp_path / "tuned", layers=())  # a QA model equal to the base plus a new head
    (tmp_path / "tuned" / "tokenizer.json").write_text('{"fake": "tokenizer"}')
    shrunk = shrink_layers(tmp_path / "tuned", tmp_path / "shrunk", keep=[1])
    assert (shrunk / "tokenizer.json").is_file()
    make_delta(base, shrunk, tmp_path / "delta")
    manifest = json.loads((tmp_path / "delta" / MANIFEST).read_text())
    layer0 = [e for e in manifest["tensors"] if ".encoder.layer.0." in e["name"]]
    assert layer0 and all(".layer.1." in e["base"] and e["method"] == "base" for e in layer0)  # nothing stored
    got = load_weights(apply_delta(base, tmp_path / "delta", tmp_path / "out"))
    assert all(np.array_equal(got[k], v) for k, v in load_weights(shrunk).items())
