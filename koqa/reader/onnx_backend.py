"""ONNX Runtime backend for the reader: export once, cache, run fp32 or dynamic int8.

>>> from pathlib import Path
>>> runner = OnnxRunner.load(Path("/models/my-reader"), quantized=True)      # doctest: +SKIP
>>> start, end = runner({"input_ids": ids, "attention_mask": mask})           # doctest: +SKIP

A runner takes and returns what :class:`koqa.reader.loading.TorchRunner` does: a
dict of int64 arrays (``input_ids``, ``attention_mask``, optionally
``token_type_ids``) → ``(start_logits, end_logits)`` float32 ``(batch, tokens)``.

Cache: ``<Settings.model_cache>/onnx/<name>-<fingerprint>/{fp32,int8}/model.onnx``.
The fingerprint hashes the resolved model folder and the size and mtime of its
config and weight files, so retraining into the same folder makes a new export.
Each variant is built in a temporary folder and renamed into place
(:func:`koqa.models.cache.ensure_built`), so a killed export never leaves a
half-written model and racing processes reuse one build.

Quantization (:class:`QuantSettings`) is dynamic int8 on the MatMul weights, with
activations quantized per batch at run time; the defaults were picked by
measurement on a 2-core AVX2 CPU without VNNI (see ``bench/reader_speed.py``).
"""

from __future__ import annotations

import hashlib
import os
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from koqa.errors import ModelUnavailable

EXPORT_VERSION = 1  # bump when the exported graph changes: cached exports get rebuilt
OPSET = 17
_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
_OUTPUTS = ("start_logits", "end_logits")
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".json")


@dataclass(frozen=True)
class QuantSettings:
    """How the int8 variant is made (``onnxruntime.quantization.quantize_dynamic``).

    ``reduce_range`` (7-bit weights) avoids u8×s8 overflow on CPUs without VNNI;
    ``exclude_head`` keeps the 2-output QA head in fp32 (it is tiny and its error
    moves span scores directly).
    """

    per_channel: bool = True
    reduce_range: bool = True
    op_types: tuple[str, ...] = ("MatMul",)
    exclude_head: bool = True


def model_fingerprint(model_dir: Path) -> str:
    """Hash of the folder path and the size/mtime of its config and weight files."""
    model_dir = Path(model_dir).resolve()
    h = hashlib.sha256(str(model_dir).encode())
    for f in sorted(model_dir.iterdir()):
        if f.is_file() and f.suffix in _WEIGHT_SUFFIXES:
            st = f.stat()
            h.update(f"{f.name}:{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()[:16]


def cache_root(model_dir: Path, settings=None) -> Path:
    """``<model_cache>/onnx/<folder name>-<fingerprint>`` for ``model_dir``."""
    from koqa.settings import Settings

    settings = settings or Settings.from_env()
    return settings.model_cache / "onnx" / f"{Path(model_dir).resolve().name}-{model_fingerprint(model_dir)}"


def ensure_onnx(model_dir: Path, *, quantized: bool = False, quant: QuantSettings = QuantSettings(), settings=None) -> Path:
    """Path of the cached ``model.onnx`` for ``model_dir`` (exported/quantized on first use)."""
    import torch

    from koqa.models.cache import ensure_built

    model_dir = Path(model_dir)
    if not (model_dir / "config.json").is_file():
        raise ModelUnavailable(f"cannot export {str(model_dir)!r} to ONNX: not a local model folder with config.json")
    root = cache_root(model_dir, settings)
    key = f"v{EXPORT_VERSION}-opset{OPSET}-torch{torch.__version__}"
    fp32 = ensure_built(root, "fp32", key, lambda d: export_onnx(model_dir, d / "model.onnx"), {"source": str(model_dir)})
    if not quantized:
        return fp32 / "model.onnx"
    qkey = f"{key}-{sorted(asdict(quant).items())}"
    int8 = ensure_built(root, "int8", qkey, lambda d: quantize(fp32 / "model.onnx", d / "model.onnx", quant),
                        {"source": str(model_dir), "quant": asdict(quant)})
    return int8 / "model.onnx"


def export_onnx(model_dir: Path, out: Path) -> None:
    """Export the QA model with dynamic batch and sequence axes (legacy tracer, opset 17).

    The dummy batch has a padded row so the traced graph always applies the
    attention mask (a mask of all ones may be skipped by transformers at trace time).
    """
    import inspect

    import torch

    from koqa.reader.loading import load_qa_model

    model = load_qa_model(str(model_dir), "float32", "cpu")
    accepted = inspect.signature(model.forward).parameters
    names = [n for n in _INPUTS if n in accepted]
    ids = torch.full((2, 16), 5, dtype=torch.long)
    mask = torch.ones_like(ids)
    mask[1, 9:] = 0
    dummy = {"input_ids": ids, "attention_mask": mask, "token_type_ids": torch.zeros_like(ids)}
    axes = {n: {0: "batch", 1: "tokens"} for n in (*names, *_OUTPUTS)}
    with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
        warnings.simplefilter("ignore")  # tracer and deprecation chatter; correctness is tested
        torch.onnx.export(model, (), str(out), kwargs={n: dummy[n] for n in names}, input_names=names,
                          output_names=list(_OUTPUTS), dynamic_axes=axes, opset_version=OPSET, dynamo=False)


def quantize(src: Path, out: Path, quant: QuantSettings) -> None:
    """Dynamic int8 quantization of ``src`` into ``out``."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    exclude = []
    if quant.exclude_head:
        graph = onnx.load(str(src), load_external_data=False).graph
        exclude = [n.name for n in graph.node if n.op_type in quant.op_types and _is_head(n)]
    quantize_dynamic(str(src), str(out), per_channel=quant.per_channel, reduce_range=quant.reduce_range,
                     weight_type=QuantType.QInt8, op_types_to_quantize=list(quant.op_types), nodes_to_exclude=exclude,
                     # fused contrib ops (Attention, SkipLayerNormalization) defeat ONNX shape inference
                     extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})


def _is_head(node) -> bool:
    """The QA head: the MatMul whose weight initializer belongs to ``qa_outputs``."""
    return "qa_outputs" in node.name or any("qa_outputs" in i for i in node.input)


def _threads() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


class OnnxRunner:
    """Runs an ONNX QA model in ONNX Runtime on numpy batches."""

    def __init__(self, session):
        self.session = session
        self.inputs = [i.name for i in session.get_inputs()]

    @classmethod
    def load(cls, path: Path, *, quantized: bool = False, settings=None, quant: QuantSettings = QuantSettings(),
             threads: int | None = None) -> "OnnxRunner":
        """Runner for a model folder (exported and cached on first use) or a ``.onnx`` file."""
        path = Path(path)
        model = path if path.suffix == ".onnx" else ensure_onnx(path, quantized=quantized, quant=quant, settings=settings)
        return cls(make_session(model, threads))

    def __call__(self, batch: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        ids = batch["input_ids"]
        feed = {n: batch[n] if n in batch else np.zeros_like(ids) for n in self.inputs}
        start, end = self.session.run(list(_OUTPUTS), feed)
        return start.astype(np.float32, copy=False), end.astype(np.float32, copy=False)


def make_session(model: Path, threads: int | None = None):
    """A CPU inference session using every core this process may run on."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.intra_op_num_threads = threads or _threads()
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.log_severity_level = 3  # quantized graphs warn about unused initializers
    try:
        return ort.InferenceSession(str(model), opts, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own untyped errors
        raise ModelUnavailable(f"cannot load ONNX model {str(model)!r}: {exc}") from None
