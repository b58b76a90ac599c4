"""A fine-tuned model stored as a small delta on its base model (how the default reader lives in git).

A delta folder holds ``config.json`` (the tuned model's), ``delta.safetensors`` (only what
differs from the base: see :mod:`koqa.models.delta_codecs`) and ``delta.json`` (format,
base name, a fingerprint of the base tensors, one entry per tuned tensor with its codec,
and the sha256 of the delta file).  The tokenizer always comes from the base.

>>> report = make_delta("base/", "tuned/", "models/koqa-reader-small/")   # doctest: +SKIP
>>> report.size_bytes < 20e6, report.max_abs_error                        # doctest: +SKIP
(True, 0.00012)
>>> apply_delta("base/", "models/koqa-reader-small/", "/tmp/reader")      # doctest: +SKIP
PosixPath('/tmp/reader')
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from koqa.errors import InvalidInput, ModelUnavailable
from koqa.models.delta_codecs import decode, encode
from koqa.models.shrink import layer_map, original_name
from koqa.models.tokenizer_files import TOKENIZER_FILES, copy_tokenizer  # noqa: F401  (TOKENIZER_FILES: re-exported)

FORMAT = "koqa-delta/1"
MANIFEST = "delta.json"
DELTA_FILE = "delta.safetensors"


@dataclass(frozen=True)
class DeltaReport:
    """What :func:`make_delta` wrote. ``max_abs_error``: worst |assembled − tuned| weight."""

    out_dir: Path
    size_bytes: int
    max_abs_error: float
    methods: dict[str, int] = field(default_factory=dict)  # codec -> tensor count


def make_delta(base_dir: str | Path, tuned_dir: str | Path, out_dir: str | Path, *,
               base_name: str = "koqa:e5-small-ko", bits: int = 8,
               int4_within: float | None = None) -> DeltaReport:
    """Write the delta of ``tuned_dir`` against ``base_dir`` into ``out_dir``.

    ``bits`` (8 or 4) is the precision of changed matrices that are not low-rank;
    ``int4_within`` (with 8) stores a matrix in int4 where that keeps its max weight error
    within this bound.  Other files already in ``out_dir`` (a README.md model card) are left alone.
    """
    if bits not in (8, 4):
        raise InvalidInput("bits", bits, "must be 8 or 4")
    if int4_within is not None and not (int4_within > 0 and bits == 8):
        raise InvalidInput("int4_within", int4_within, "must be a positive weight error, with bits 8")
    base, tuned = load_weights(base_dir, "base_dir"), load_weights(tuned_dir, "tuned_dir")
    config = _read_json(Path(tuned_dir) / "config.json", "tuned_dir")
    layers = layer_map(config)  # a shrunk model's layer i tunes base layer layers[i]
    entries, stored, errors = [], {}, []
    with _single_thread_blas():
        for name in sorted(tuned):
            base_key = _base_key(original_name(name, layers), base)
            method, parts, err = encode(name, tuned[name], base.get(base_key), bits=bits, int4_within=int4_within)
            stored.update(parts)
            errors.append(err)
            entries.append({"name": name, "base": base_key, "method": method,
                            "shape": list(tuned[name].shape), "max_abs_error": err})
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    from safetensors.numpy import save_file

    save_file(stored, str(out / DELTA_FILE), metadata={"format": FORMAT})
    manifest = {
        "format": FORMAT, "base": base_name, "base_fingerprint": fingerprint(base), "bits": bits,
        "int4_within": int4_within,
        "delta_file": DELTA_FILE, "delta_sha256": _sha256(out / DELTA_FILE),
        "max_abs_error": max(errors, default=0.0), "tensors": entries,
    }
    _write_json(out / MANIFEST, manifest)
    _write_json(out / "config.json", config)
    size = sum((out / f).stat().st_size for f in (DELTA_FILE, MANIFEST, "config.json"))
    methods = dict(Counter(e["method"] for e in entries))
    return DeltaReport(out, size, manifest["max_abs_error"], methods)


def apply_delta(base_dir: str | Path, delta_dir: str | Path, out_dir: str | Path) -> Path:
    """Assemble the tuned model (fp32 safetensors, config, base tokenizer) into ``out_dir``.

    Deterministic: the same inputs give a bitwise-identical ``model.safetensors``.  A base
    other than the one the delta was made from is refused (ModelUnavailable).
    """
    delta_dir, base_dir = Path(delta_dir), Path(base_dir)
    manifest = read_manifest(delta_dir)
    path = delta_dir / manifest["delta_file"]
    if _sha256(path) != manifest["delta_sha256"]:
        raise ModelUnavailable(f"{path} does not match the sha256 in {delta_dir / MANIFEST}; the delta is damaged")
    base = load_weights(base_dir, "base_dir")
    if fingerprint(base) != manifest["base_fingerprint"]:
        raise ModelUnavailable(
            f"{base_dir} is not the base the delta in {delta_dir} was made from ({manifest['base']})"
        )
    from safetensors.numpy import load_file, save_file

    stored = load_file(str(path))
    tensors = {}
    for e in manifest["tensors"]:
        parts = {k: v for k, v in stored.items() if k == e["name"] or k.startswith(e["name"] + ":")}
        tensors[e["name"]] = np.ascontiguousarray(
            decode(e["name"], e["method"], parts, base.get(e["base"]) if e["base"] else None, tuple(e["shape"]))
        )
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(out / "model.safetensors"), metadata={"format": "pt"})
    config = _read_json(delta_dir / "config.json", "delta_dir")
    for key in ("torch_dtype", "dtype"):
        if key in config:
            config[key] = "float32"
    _write_json(out / "config.json", config)
    copy_tokenizer(base_dir, out)
    if (delta_dir / "README.md").is_file():
        shutil.copyfile(delta_dir / "README.md", out / "README.md")
    return out


def read_manifest(delta_dir: str | Path) -> dict:
    """The ``delta.json`` of a delta folder; ModelUnavailable when missing or foreign."""
    manifest = _read_json(Path(delta_dir) / MANIFEST, "delta_dir", missing=ModelUnavailable)
    if manifest.get("format") != FORMAT:
        raise ModelUnavailable(f"{delta_dir}: unsupported delta format {manifest.get('format')!r} (want {FORMAT})")
    return manifest


def load_weights(folder: str | Path, field_name: str = "model") -> dict[str, np.ndarray]:
    """All tensors of a HF folder (single or sharded safetensors) as float32 numpy arrays."""
    folder = Path(folder)
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        files = sorted(set(json.loads(index.read_text())["weight_map"].values()))
    elif (folder / "model.safetensors").is_file():
        files = ["model.safetensors"]
    else:
        raise InvalidInput(field_name, str(folder), "is not a model folder with model.safetensors")
    from safetensors.torch import load_file
    import torch

    out = {}
    for name in files:
        for key, t in load_file(str(folder / name)).items():
            out[key] = t.to(torch.float32).numpy()
    return out


def fingerprint(weights: dict[str, np.ndarray]) -> str:
    """sha256 over names, shapes and float32 values: the identity of a base model."""
    h = hashlib.sha256()
    for name in sorted(weights):
        arr = np.ascontiguousarray(weights[name], np.float32)
        h.update(f"{name}:{list(arr.shape)};".encode())
        h.update(arr.tobytes())
    return h.hexdigest()


def _single_thread_blas():
    """Small QR/SVD calls run 10-100x slower with BLAS threads on a busy machine."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # optional (comes with scikit-learn): then BLAS keeps its threads
        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


def _base_key(name: str, base: dict) -> str | None:
    """The base tensor that ``name`` tunes: same name, or without a head-model prefix (``bert.``)."""
    if name in base:
        return name
    stripped = name.split(".", 1)[-1]
    return stripped if stripped in base else None


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _read_json(path: Path, field_name: str, missing=InvalidInput) -> dict:
    if not path.is_file():
        if missing is ModelUnavailable:
            raise ModelUnavailable(f"{path} is missing")
        raise InvalidInput(field_name, str(path.parent), f"has no {path.name}")
    return json.loads(path.read_text(encoding="utf-8"))


def _write_json(path: Path, obj) -> None:
    path.write_text(json.dumps(obj, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
