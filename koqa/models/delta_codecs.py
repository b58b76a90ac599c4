"""Per-tensor codecs of a model delta: how one tuned tensor is stored relative to its base.

* ``base``    — unchanged: nothing stored.
* ``fp32``    — the tuned value itself (1-D tensors, new tensors, shape changes): exact.
* ``lowrank`` — ``tuned − base`` is (numerically) low-rank, e.g. a merged LoRA adapter:
  fp32 factors ``a`` (rows × r) and ``b`` (r × cols); chosen only when smaller than int8
  and at least as accurate.
* ``int8``    — ``tuned − base`` (fp32) as int8 with one fp32 scale per row
  (``max|row| / 127``); only changed rows are stored when some rows are unchanged.

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

LOWRANK_REL_TOL = 1e-4  # singular values below this fraction of the largest count as noise


def encode(name: str, tuned: np.ndarray, base: np.ndarray | None) -> tuple[str, dict[str, np.ndarray], float]:
    """``(method, stored tensors, max |decoded − tuned|)`` for one tensor."""
    tuned = np.asarray(tuned, np.float32)
    if base is not None and base.shape == tuned.shape and np.array_equal(base, tuned):
        return "base", {}, 0.0
    if base is None or base.shape != tuned.shape or tuned.ndim < 2:
        return "fp32", {name: np.ascontiguousarray(tuned)}, 0.0
    shape = tuned.shape
    t2, b2 = tuned.reshape(shape[0], -1), np.asarray(base, np.float32).reshape(shape[0], -1)
    parts = _int8_encode(name, t2 - b2)
    err = _max_err(decode(name, "int8", parts, base, shape), tuned)
    low = _lowrank_encode(name, t2 - b2, budget=sum(p.nbytes for p in parts.values()))
    if low is not None:
        low_err = _max_err(decode(name, "lowrank", low, base, shape), tuned)
        if low_err <= err:
            return "lowrank", low, low_err
    return "int8", parts, err


def decode(name: str, method: str, parts: dict[str, np.ndarray], base: np.ndarray | None, shape) -> np.ndarray:
    """The tuned tensor (float32) from its stored ``parts`` and the ``base`` tensor."""
    if method == "fp32":
        return np.asarray(parts[name], np.float32).reshape(shape)
    base32 = np.asarray(base, np.float32)
    if method == "base":
        return base32.copy()
    out = base32.reshape(shape[0], -1).copy()
    if method == "int8":
        rows = parts.get(f"{name}:rows")
        delta = parts[f"{name}:q"].astype(np.float32) * parts[f"{name}:scale"][:, None]
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


def _int8_encode(name: str, delta: np.ndarray) -> dict[str, np.ndarray]:
    changed = np.flatnonzero(np.any(delta != 0, axis=1))
    subset = len(changed) < len(delta)
    d = delta[changed] if subset else delta
    scale = (np.abs(d).max(axis=1) / 127).astype(np.float32)
    safe = np.where(scale > 0, scale, 1).astype(np.float32)
    q = np.clip(np.rint(d / safe[:, None]), -127, 127).astype(np.int8)
    parts = {f"{name}:q": q, f"{name}:scale": scale}
    if subset:
        parts[f"{name}:rows"] = changed.astype(np.int64)
    return parts


def _lowrank_encode(name: str, delta: np.ndarray, budget: int) -> dict[str, np.ndarray] | None:
    """Factors of ``delta`` when its numerical rank makes them cheaper than ``budget`` bytes."""
    m, n = delta.shape
    max_rank = budget // (4 * (m + n))
    if max_rank < 1:
        return None
    u, s, vt = np.linalg.svd(delta.astype(np.float64), full_matrices=False)
    if s.size == 0 or s[0] == 0:
        return None
    rank = int(np.count_nonzero(s > s[0] * LOWRANK_REL_TOL))
    if rank > max_rank:
        return None
    a = np.ascontiguousarray((u[:, :rank] * s[:rank]).astype(np.float32))
    b = np.ascontiguousarray(vt[:rank].astype(np.float32))
    return {f"{name}:a": a, f"{name}:b": b}


def _max_err(decoded: np.ndarray, tuned: np.ndarray) -> float:
    return float(np.abs(decoded.astype(np.float64) - tuned.astype(np.float64)).max(initial=0.0))
