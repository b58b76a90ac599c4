"""Kiwi morphological analysis: sentence boundaries and BM25 terms from one pass.

A :class:`KiwiAnalyzer` loads Kiwi once (about a second) on first use and is shared by
the chunker (sentences with their content terms) and the BM25 query side (terms of a
question), so passages and questions are analysed the same way.

Content terms are nouns (NNG, NNP, NNB, NR, NP excluded), verb/adjective stems (VV, VA),
roots (XR), numbers (SN), foreign words (SL, lower-cased) and Hanja (SH): the morphemes
that carry meaning, without particles and endings.

>>> a = KiwiAnalyzer()
>>> a.terms("세종대왕은 1443년에 훈민정음을 창제하였다.")       # doctest: +SKIP
['세종', '대왕', '1443', '년', '훈민정음', '창제']
>>> [(s.start, s.end) for s in a.sentences(["가나다. 라마바."])[0]]   # doctest: +SKIP
[(0, 4), (5, 9)]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

CONTENT_TAGS = frozenset({"NNG", "NNP", "NNB", "NR", "SN", "SL", "SH", "VV", "VA", "XR"})


@dataclass(frozen=True)
class Sentence:
    """A sentence of a text: ``text[start:end]``, with content terms and their offsets."""

    start: int
    end: int
    terms: tuple[str, ...] = ()
    term_starts: tuple[int, ...] = ()


def _term(form: str, tag: str) -> str | None:
    if tag not in CONTENT_TAGS:
        return None
    return form.lower() if tag == "SL" else form


class KiwiAnalyzer:
    """Sentence splitting and content-morpheme extraction with one lazily loaded Kiwi."""

    name = "kiwi-content-v1"

    def __init__(self, num_workers: int | None = None):
        self._num_workers = num_workers
        self._kiwi = None

    @property
    def kiwi(self):
        if self._kiwi is None:
            from kiwipiepy import Kiwi

            # Kiwi's batch API needs worker threads; None lets Kiwi pick the core count.
            kiwi = Kiwi() if self._num_workers is None else Kiwi(num_workers=self._num_workers)
            kiwi.tokenize("한국어 형태소 분석기를 준비한다.")  # Kiwi finishes loading on first use; pay it now
            self._kiwi = kiwi
        return self._kiwi

    def sentences(self, texts: Sequence[str]) -> list[list[Sentence]]:
        """Split each text into sentences; offsets index into that text."""
        if not texts:
            return []
        out: list[list[Sentence]] = []
        for text, sents in zip(texts, self.kiwi.split_into_sents(list(texts), return_tokens=True)):
            out.append([self._sentence(text, s) for s in sents])
        return out

    @staticmethod
    def _sentence(text: str, sent) -> Sentence:
        terms, starts = [], []
        for tok in sent.tokens or ():
            term = _term(tok.form, tok.tag)
            if term:
                terms.append(term)
                starts.append(tok.start)
        start, end = sent.start, sent.end
        # Kiwi's offsets are exact for the str it was given; clamp defensively anyway.
        start, end = max(0, min(start, len(text))), max(0, min(end, len(text)))
        return Sentence(start, max(start, end), tuple(terms), tuple(starts))

    def terms(self, text: str) -> list[str]:
        """Content terms of one text (a query)."""
        return [t for tok in self.kiwi.tokenize(text) if (t := _term(tok.form, tok.tag))]

    def terms_many(self, texts: Sequence[str]) -> list[list[str]]:
        """Content terms of many texts, analysed in one Kiwi batch."""
        if not texts:
            return []
        return [[t for tok in toks if (t := _term(tok.form, tok.tag))] for toks in self.kiwi.tokenize(list(texts))]
