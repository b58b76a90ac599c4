"""Optional trimming of Korean particles (조사) from the end of an answer.

Uses kiwipiepy's POS tags: a trailing morpheme tagged J* (case/auxiliary/
conjunctive particles: 은/는/이/가/을/를/에/에서/의/와/과/로/으로 …) is cut off.
Offsets come from Kiwi's own token positions; nothing is snapped to whitespace.
On by default (``ReaderConfig.trim_particles``) since it measurably helps on KorQuAD.

The span is analysed together with the text that follows it (``following``): alone,
a name such as 현정은 reads as 현정 + 은, while in "현정은 회장은" Kiwi tags it as a
noun. A particle Kiwi finds fused into a syllable (버널 = 버너 + ᆯ) is never cut,
because cutting at character offsets would take the stem's letters with it.

>>> t = ParticleTrimmer.load()           # doctest: +SKIP
>>> "이순신 장군은"[: t.trim_end("이순신 장군은", " 한산도에서")]  # doctest: +SKIP
'이순신 장군'
"""

from __future__ import annotations

PARTICLE_TAGS = ("JKS", "JKC", "JKG", "JKO", "JKB", "JKV", "JKQ", "JX", "JC")
FOLLOWING_CHARS = 32  # how much of the context after a span ``span_end`` lets Kiwi see


def _fused(form: str) -> bool:
    """A morpheme written as a bare jamo (ᆫ, ᆯ …) shares its syllable with the one before it."""
    return "\u1100" <= form[0] <= "\u11ff" or "\u3131" <= form[0] <= "\u318e"


class ParticleTrimmer:
    def __init__(self, kiwi):
        self.kiwi = kiwi

    @classmethod
    def load(cls) -> "ParticleTrimmer":
        from kiwipiepy import Kiwi

        return cls(Kiwi())

    def span_end(self, context: str, start: int, end: int) -> int:
        """End offset of ``context[start:end]`` without its trailing particles, read in its sentence."""
        return start + self.trim_end(context[start:end], context[end : end + FOLLOWING_CHARS])

    def trim_end(self, text: str, following: str = "") -> int:
        """Length of ``text`` without its trailing particles (``len(text.rstrip())`` when none).

        ``following`` is the context right after ``text``; it is analysed, never cut.
        """
        end = len(text.rstrip())
        tokens = self.kiwi.tokenize(text + following)
        if any(t.start < end < t.start + t.len for t in tokens):
            return end  # the span ends inside a morpheme: no particle to cut
        tokens = [t for t in tokens if t.start + t.len <= end]
        while (len(tokens) > 1 and tokens[-1].tag.startswith(PARTICLE_TAGS) and not _fused(tokens[-1].form)
               and tokens[-1].start + tokens[-1].len == end):
            end = tokens[-1].start
            tokens = tokens[:-1]
        return len(text[:end].rstrip())
