"""Per-tensor codecs of a model delta: how one tuned tensor is stored relative to its base.

* ``base``    — unchanged: nothing stored.
* ``fp32``    — the tuned value itself (1-D tensors, new tensors, shape changes): exact.
* ``lowrank`` — ``tuned − base`` is (numerically) low-rank, e.g. a merged LoRA adapter:
  fp32 factors ``a`` (rows × r) and ``b`` (r × cols); chosen only when smaller than int8
  and at least as accurate.
* ``int8``    — ``tuned − base`` (fp32) as int8 with one fp32 scale per row
  (``max|row| / 127``); only changed rows are stored when some rows are unchanged.
* ``int4``    — (opt-in) the same with 4-bit values and one fp32 scale per 64 weights
  of a row (``max / 7``): half the size of int8, about 9× the error.  ``bits=4`` uses it
  for every such matrix; ``int4_within=tol`` only where its max error stays within
  ``tol`` (mixed precision: matrices that changed little cost half).

Decoding uses only element-wise numpy operations in a fixed order, so the result is
bitwise identical on every run and every machine.

>>> base = np.zeros((4, 8), "f4"); tuned = base.copy(); tuned[1] = np.linspace(-1, 1, 8)
>>> method, parts, err = encode("w", tuned, base)
>>> method, sorted(parts), err <= 1 / 254
('int8', ['w:q', 'w:rows', 'w:scale'], True)
>>> bool(np.abs(decode("w", method, parts, base, tuned.shape) - tuned).max() <= err)
True
"""

from __future__ import annotations

import numpy as np

GROUP = 64  # int4: one scale per 64 consecutive weights of a row
_SKETCH_EXTRA = 8  # oversampling of the randomized range finder


def encode(name: str, tuned: np.ndarray, base: np.ndarray | None, bits: int = 8,
           int4_within: float | None = None) -> tuple[str, dict[str, np.ndarray], float]:
    """``(method, stored tensors, max |decoded − tuned|)`` for one tensor; ``bits`` 8 or 4."""
    tuned = np.asarray(tuned, np.float32)
    if base is not None and base.shape == tuned.shape and np.array_equal(base, tuned):
        return "base", {}, 0.0
    if base is None or base.shape != tuned.shape or tuned.ndim < 2:
        return "fp32", {name: np.ascontiguousarray(tuned)}, 0.0
    shape = tuned.shape
    delta = tuned.reshape(shape[0], -1) - np.asarray(base, np.float32).reshape(shape[0], -1)
    method, parts, err = _quantize(name, delta, base, tuned, "int8" if bits == 8 else "int4")
    if bits == 8 and int4_within is not None and delta.shape[1] % GROUP == 0:
        small = _quantize(name, delta, base, tuned, "int4")
        if small[2] <= int4_within:
            method, parts, err = small
    low = _lowrank_encode(name, delta, budget=sum(p.nbytes for p in parts.values()), tol=err)
    if low is not None:
        low_err = _max_err(decode(name, "lowrank", low, base, shape), tuned)
        if low_err <= err:
            return "lowrank", low, low_err
    return method, parts, err


def decode(name: str, method: str, parts: dict[str, np.ndarray], base: np.ndarray | None, shape) -> np.ndarray:
    """The tuned tensor (float32) from its stored ``parts`` and the ``base`` tensor."""
    if method == "fp32":
        return np.asarray(parts[name], np.float32).reshape(shape)
    base32 = np.asarray(base, np.float32)
    if method == "base":
        return base32.copy()
    out = base32.reshape(shape[0], -1).copy()
    if method in ("int8", "int4"):
        rows = parts.get(f"{name}:rows")
        delta = _quant_decode(name, method, parts, out.shape[1])
        if rows is None:
            out += delta
        else:
            out[rows] += delta
    elif method == "lowrank":
        a, b = parts[f"{name}:a"].astype(np.float64), parts[f"{name}:b"].astype(np.float64)
        acc = np.zeros(out.shape, np.float64)
        for k in range(a.shape[1]):  # fixed-order outer products: no BLAS, so bitwise stable
            acc += np.multiply.outer(a[:, k], b[k])
        out = (out.astype(np.float64) + acc).astype(np.float32)
    else:
        raise ValueError(f"unknown delta method {method!r} for {name}")
    return out.reshape(shape)


def _quantize(name: str, delta: np.ndarray, base: np.ndarray, tuned: np.ndarray, method: str):
    if method == "int4" and delta.shape[1] % GROUP:
        method = "int8"
    parts = _quant_encode(name, delta, method)
    return method, parts, _max_err(decode(name, method, parts, base, tuned.shape), tuned)


def _quant_encode(name: str, delta: np.ndarray, method: str) -> dict[str, np.ndarray]:
    changed = np.flatnonzero(np.any(delta != 0, axis=1))
    subset = len(changed) < len(delta)
    d = delta[changed] if subset else delta
    levels = 127 if method == "int8" else 7
    groups = d.reshape(len(d), -1, GROUP) if method == "int4" else d[:, None, :]
    scale = (np.abs(groups).max(axis=2) / levels).astype(np.float32)
    safe = np.where(scale > 0, scale, 1).astype(np.float32)
    q = np.clip(np.rint(groups / safe[..., None]), -levels, levels).astype(np.int8).reshape(d.shape)
    if method == "int4":
        nib = (q + 8).astype(np.uint8)
        parts = {f"{name}:q": nib[:, 0::2] | (nib[:, 1::2] << 4), f"{name}:scale": scale}
    else:
        parts = {f"{name}:q": q, f"{name}:scale": scale[:, 0]}
    if subset:
        parts[f"{name}:rows"] = changed.astype(np.int64)
    return parts


def _quant_decode(name: str, method: str, parts: dict[str, np.ndarray], cols: int) -> np.ndarray:
    q, scale = parts[f"{name}:q"], parts[f"{name}:scale"]
    if method == "int8":
        return q.astype(np.float32) * scale[:, None]
    values = np.empty((len(q), cols), np.float32)
    values[:, 0::2] = (q & 0x0F).astype(np.float32) - 8
    values[:, 1::2] = (q >> 4).astype(np.float32) - 8
    return (values.reshape(len(q), -1, GROUP) * scale[..., None]).reshape(len(q), cols)


def _lowrank_encode(name: str, delta: np.ndarray, budget: int, tol: float) -> dict[str, np.ndarray] | None:
    """Factors of ``delta`` when a rank cheaper than ``budget`` bytes reproduces it within ``tol``.

    A randomized range finder (fixed seed) looks for the rank first, so a full-rank delta
    (a full fine-tune) costs one thin matrix product instead of a full SVD.
    """
    m, n = delta.shape
    max_rank = budget // (4 * (m + n))
    if max_rank < 1:
        return None
    d = delta.astype(np.float64)
    sketch = d @ np.random.default_rng(0).standard_normal((n, min(n, max_rank + _SKETCH_EXTRA)))
    q, _ = np.linalg.qr(sketch)
    r_small = q.T @ d
    outside = np.abs(d - q @ r_small).max(initial=0.0)
    if outside > tol:
        return None  # not low-rank enough within the budget
    u, s, vt = np.linalg.svd(r_small, full_matrices=False)
    # max|residual| <= its Frobenius norm: the smallest rank whose tail fits within tol
    tail = np.sqrt(np.cumsum((s**2)[::-1])[::-1])  # tail[r] = ||singular values r..||
    fits = np.flatnonzero(outside + np.append(tail, 0.0)[1:] <= tol)
    if not fits.size or fits[0] + 1 > max_rank:
        return None
    rank = int(fits[0]) + 1
    a = (q @ u[:, :rank]) * s[:rank]
    return {f"{name}:a": np.ascontiguousarray(a.astype(np.float32)),
            f"{name}:b": np.ascontiguousarray(vt[:rank].astype(np.float32))}


def _max_err(decoded: np.ndarray, tuned: np.ndarray) -> float:
    return float(np.abs(decoded.astype(np.float64) - tuned.astype(np.float64)).max(initial=0.0))
