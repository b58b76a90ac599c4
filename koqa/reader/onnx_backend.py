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

Quantization (:class:`QuantSettings`) is dynamic int8 of the MatMul and fused
Attention weights, with activations quantized per batch at run time; the defaults
keep the layers whose int8 error costs accuracy in fp32 (see :class:`QuantSettings`).
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from koqa.errors import ModelUnavailable

EXPORT_VERSION = 2  # bump when the exported graph changes: cached exports get rebuilt
OPSET = 17
_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
_OUTPUTS = ("start_logits", "end_logits")
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".json")


# node names of the fused graph: Attention_<n> (QKV + attention), <prefix>/encoder/layer.<n>/
# {attention/output,intermediate,output}/dense/MatMul (attention out, FFN up, FFN down), /qa_outputs/MatMul
FFN_DOWN = r"layer\.\d+/output/dense"
FFN_UP = r"layer\.\d+/intermediate/dense"


@dataclass(frozen=True)
class QuantSettings:
    """How the int8 variant is made (``onnxruntime.quantization.quantize_dynamic``).

    Weights are int8 (per output channel when ``per_channel``; 7-bit when
    ``reduce_range``), activations are quantized per batch at run time.  Nodes whose
    name matches a ``keep_fp32`` regex stay in fp32.  The defaults keep in fp32 what
    int8 hurts most and speeds up least: the FFN down-projections, whose inputs (GELU
    outputs) have outliers that one per-batch activation scale cannot cover, and the
    tiny QA head, which writes the logits directly.  Per-channel weight scales follow
    each output row's own range; 7-bit weights (``reduce_range``) guard against int16
    saturation on CPUs without VNNI but halve the weight resolution, which cost more
    accuracy than the saturation did.  The measurements that chose these are in
    docs/model-history.md.
    """

    per_channel: bool = True
    reduce_range: bool = False
    op_types: tuple[str, ...] = ("MatMul", "Attention")
    keep_fp32: tuple[str, ...] = ("qa_outputs", FFN_DOWN)


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
    """``<model_cache>/onnx/<folder name>-<fingerprint>`` for ``model_dir`` (``settings`` None: ``Settings()``)."""
    from koqa.settings import Settings

    settings = settings or Settings()
    return settings.model_cache / "onnx" / f"{Path(model_dir).resolve().name}-{model_fingerprint(model_dir)}"


def require_onnx() -> None:
    """ModelUnavailable naming the extra to install when onnx / onnxruntime are missing."""
    import importlib.util

    missing = [m for m in ("onnx", "onnxruntime") if importlib.util.find_spec(m) is None]
    if missing:
        raise ModelUnavailable(f"the onnx reader backends need {' and '.join(missing)}: "
                               "pip install 'koqa[onnx]' (or use KOQA_READER_BACKEND=auto)")


def ensure_onnx(model_dir: Path, *, quantized: bool = False, quant: QuantSettings = QuantSettings(), settings=None) -> Path:
    """Path of the cached ``model.onnx`` for ``model_dir`` (exported/quantized on first use)."""
    import torch

    require_onnx()

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
    """Export the QA model (dynamic batch and sequence axes, opset 17), fused when that is exact.

    The graph is traced with eager attention so ONNX Runtime's transformer optimizer
    can fuse it (Attention, EmbedLayerNormalization, SkipLayerNormalization,
    BiasGelu: fewer, larger kernels in fp32 and a fused int8 Attention).  The fused
    graph is kept only if its logits match torch on a padded test batch; otherwise
    the plain export is used.
    """
    from koqa.reader.checkpoints import load_qa_model

    model = load_qa_model(str(model_dir), "float32", "cpu")
    model.set_attn_implementation("eager")
    raw = out.with_name("raw.onnx")
    names = _trace(model, raw)
    fused = out.with_name("fused.onnx")
    if _fuse(raw, fused, model.config) and _matches_torch(fused, model, names):
        fused.rename(out)
        raw.unlink()
    else:
        fused.unlink(missing_ok=True)
        raw.rename(out)


def _trace(model, path: Path) -> list[str]:
    """Legacy tracer export; returns the input names.  The dummy batch has a padded
    row so the traced graph always applies the attention mask (transformers may skip
    a mask of all ones at trace time)."""
    import inspect

    import torch

    accepted = inspect.signature(model.forward).parameters
    names = [n for n in _INPUTS if n in accepted]
    dummy = _test_batch(2, 16)
    axes = {n: {0: "batch", 1: "tokens"} for n in (*names, *_OUTPUTS)}
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # tracer and deprecation chatter; correctness is checked and tested
        torch.onnx.export(model, (), str(path), kwargs={n: torch.from_numpy(dummy[n]) for n in names},
                          input_names=names, output_names=list(_OUTPUTS), dynamic_axes=axes, opset_version=OPSET,
                          dynamo=False)
    return names


def _test_batch(rows: int, tokens: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    ids = rng.integers(5, 100, (rows, tokens), dtype=np.int64)
    mask = np.ones_like(ids)
    mask[1:, tokens // 2 :] = 0
    types = np.zeros_like(ids)
    types[:, tokens // 4 :] = 1
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}


def _fuse(src: Path, out: Path, config) -> bool:
    """ONNX Runtime's BERT-family fusions; False when they do not apply."""
    heads, hidden = getattr(config, "num_attention_heads", 0), getattr(config, "hidden_size", 0)
    if not (heads and hidden):
        return False
    try:
        from onnxruntime.transformers.optimizer import optimize_model

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            optimize_model(str(src), model_type="bert", num_heads=heads, hidden_size=hidden).save_model_to_file(str(out))
        return True
    except Exception:  # an unfusable architecture: keep the plain export
        return False


def _matches_torch(path: Path, model, names: list[str], atol: float = 1e-3) -> bool:
    """Logits of the ONNX graph equal torch's on real tokens of a padded batch."""
    import torch

    batch = _test_batch(3, 48)
    if getattr(model.config, "type_vocab_size", 2) < 2:
        batch["token_type_ids"][:] = 0
    with torch.no_grad():
        ref = model(**{n: torch.from_numpy(batch[n]) for n in names})
    try:
        got = make_session(path, 1).run(list(_OUTPUTS), {n: batch[n] for n in names})
    except Exception:
        return False
    real = batch["attention_mask"] == 1
    return all(np.abs(g - r.float().numpy())[real].max() <= atol for g, r in zip(got, (ref.start_logits, ref.end_logits)))


def quantize(src: Path, out: Path, quant: QuantSettings) -> None:
    """Dynamic int8 quantization of ``src`` into ``out``."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    graph = onnx.load(str(src), load_external_data=False).graph
    exclude = [n.name for n in graph.node if n.op_type in quant.op_types and _keep_fp32(n, quant.keep_fp32)]
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # quantize_dynamic logs "consider pre-processing" advice at WARNING
    try:
        quantize_dynamic(str(src), str(out), per_channel=quant.per_channel, reduce_range=quant.reduce_range,
                         weight_type=QuantType.QInt8, op_types_to_quantize=list(quant.op_types),
                         nodes_to_exclude=exclude,
                         # fused contrib ops (Attention, SkipLayerNormalization) defeat ONNX shape inference
                         extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})
    finally:
        root.setLevel(level)


def _keep_fp32(node, patterns: tuple[str, ...]) -> bool:
    return any(re.search(p, node.name) for p in patterns)


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
        require_onnx()
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
