"""Optional trimming of Korean particles (조사) from the end of an answer.

Uses kiwipiepy's POS tags: a trailing morpheme tagged J* (case/auxiliary/
conjunctive particles: 은/는/이/가/을/를/에/에서/의/와/과/로/으로 …) is cut off.
Offsets come from Kiwi's own token positions; nothing is snapped to whitespace.
On by default (``ReaderConfig.trim_particles``) since it measurably helps on KorQuAD.

>>> t = ParticleTrimmer.load()           # doctest: +SKIP
>>> "이순신 장군은"[: t.trim_end("이순신 장군은")]  # doctest: +SKIP
'이순신 장군'
"""

from __future__ import annotations

PARTICLE_TAGS = ("JKS", "JKC", "JKG", "JKO", "JKB", "JKV", "JKQ", "JX", "JC")


class ParticleTrimmer:
    def __init__(self, kiwi):
        self.kiwi = kiwi

    @classmethod
    def load(cls) -> "ParticleTrimmer":
        from kiwipiepy import Kiwi

        return cls(Kiwi())

    def trim_end(self, text: str) -> int:
        """Length of ``text`` without its trailing particles (``len(text)`` when none)."""
        end = len(text.rstrip())
        tokens = self.kiwi.tokenize(text[:end])
        while len(tokens) > 1 and tokens[-1].tag.startswith(PARTICLE_TAGS) and tokens[-1].start + tokens[-1].len == end:
            end = tokens[-1].start
            tokens = tokens[:-1]
        return len(text[:end].rstrip())
