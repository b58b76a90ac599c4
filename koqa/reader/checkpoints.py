"""Hugging Face checkpoints of a reader: its fast tokenizer and its torch QA model.

Below both runners: :mod:`koqa.reader.loading` (torch) and :mod:`koqa.reader.onnx_backend`
(which exports the torch model) import it, and it imports neither.
"""

from __future__ import annotations

from koqa.errors import ModelUnavailable

_DTYPES = {"float32": "float32", "fp32": "float32", "bfloat16": "bfloat16", "bf16": "bfloat16",
           "float16": "float16", "fp16": "float16"}


def load_tokenizer(path: str):
    """The fast tokenizer saved in ``path``; ModelUnavailable (saying what a folder needs) when it cannot load."""
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(path)
    except OSError as exc:
        raise ModelUnavailable(
            f"cannot load tokenizer {path!r} ({exc.__class__.__name__}). Without network access, pass a local "
            "folder that holds a Hugging Face checkpoint (config.json, model.safetensors, tokenizer.json)."
        ) from None


def load_qa_model(path: str, dtype: str = "float32", device: str | None = None):
    """``AutoModelForQuestionAnswering`` from a QA checkpoint or a bare encoder (fresh QA head)."""
    import torch
    from transformers import AutoModelForQuestionAnswering

    if dtype not in _DTYPES:
        raise ModelUnavailable(f"unknown dtype {dtype!r}; use one of {sorted(set(_DTYPES))}")
    try:
        model = AutoModelForQuestionAnswering.from_pretrained(path, dtype=getattr(torch, _DTYPES[dtype]))
    except OSError as exc:
        raise ModelUnavailable(
            f"cannot load model {path!r} ({exc.__class__.__name__}). Without network access, pass a local "
            "folder that holds a Hugging Face checkpoint."
        ) from None
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    return model.to(device).eval()
