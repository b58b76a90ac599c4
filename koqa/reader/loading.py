"""Loading a reader's tokenizer and model runner from a name or folder.

The checkpoint loaders live in :mod:`koqa.reader.checkpoints` (the ONNX export uses them too);
they are re-exported here for callers that load a reader's parts by hand.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from koqa.errors import ModelUnavailable
from koqa.reader.checkpoints import load_qa_model, load_tokenizer

__all__ = ["TorchRunner", "load_qa_model", "load_reader_parts", "load_tokenizer", "resolve"]


def resolve(name_or_path: str, settings=None) -> str:
    from koqa.models.registry import resolve_model

    return resolve_model(name_or_path, settings)


class TorchRunner:
    """Runs a torch QA model on numpy batches; returns float32 numpy logits."""

    def __init__(self, model):
        import torch

        self.model = model
        self.device = next(model.parameters()).device
        self._torch = torch

    def __call__(self, batch: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        torch = self._torch
        with torch.inference_mode():
            inputs = {k: torch.from_numpy(v).to(self.device, non_blocking=True) for k, v in batch.items()}
            out = self.model(**inputs)
            return (out.start_logits.float().cpu().numpy(), out.end_logits.float().cpu().numpy())


def load_reader_parts(name_or_path: str, *, device=None, backend="torch-fp32", settings=None):
    """(fast tokenizer, runner) for ``name_or_path`` on a concrete backend (not "auto": see
    :func:`koqa.reader.backend.resolve_backend`); the backend is the one precision knob."""
    from koqa.settings import READER_BACKENDS, reader_backend_name

    backend = reader_backend_name(backend)
    path = resolve(name_or_path, settings)
    tokenizer = load_tokenizer(path)
    if backend in ("torch-fp32", "torch-bf16"):
        # bf16 weights halve memory traffic; on CPUs with AVX512-BF16 or AMX the matmuls run natively in bf16
        return tokenizer, TorchRunner(load_qa_model(path, "bfloat16" if backend == "torch-bf16" else "float32", device))
    if backend in ("onnx", "onnx-int8"):
        from koqa.reader.onnx_backend import OnnxRunner

        return tokenizer, OnnxRunner.load(Path(path), quantized=backend == "onnx-int8", settings=settings)
    raise ModelUnavailable(f"unknown reader backend {backend!r}; use one of {', '.join(READER_BACKENDS[1:])}")
