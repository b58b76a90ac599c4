"""Korean-aware chunking: whole Kiwi sentences packed into passages of at most N tokens.

Paragraphs (split at blank lines) are cut into sentences by Kiwi; the sentences are
packed greedily into passages of at most ``max_tokens`` tokens of the reader/embedder
tokenizer (the me5-small-ko tokenizer by default: 320 tokens leave room for a question
in the reader's 384-token window). Consecutive passages share ``overlap_sentences``
sentences. A sentence longer than ``max_tokens`` is cut at token boundaries. Every
passage keeps ``start``/``end`` offsets into the document text, and the Kiwi content
terms of its sentences for BM25.

>>> from koqa.types import Document
>>> chunker = Chunker(RegexTokenizer(), max_tokens=8)
>>> doc = Document(id="d", text="세종은 훈민정음을 만들었다. 집현전 학자들이 도왔다. 1446년에 반포되었다.")
>>> [(c.start, c.end) for c in chunker.chunk(doc)]        # doctest: +SKIP
[(0, 29), (16, 43)]
"""

from __future__ import annotations

import re
from bisect import bisect_left
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol, Sequence

from koqa.errors import InvalidInput
from koqa.text.kiwi import KiwiAnalyzer, Sentence
from koqa.types import Chunk, Document

_PARAGRAPH_BREAK = re.compile(r"\n[ \t\r\f\v]*\n\s*")


class Tokenizer(Protocol):
    """Token character spans (no special tokens), used to count and cut text."""

    name: str

    def spans(self, texts: Sequence[str]) -> list[list[tuple[int, int]]]: ...


class RegexTokenizer:
    """Dependency-free stand-in: runs of up to 3 word characters, or one symbol."""

    name = "regex-w3"
    _TOKEN = re.compile(r"\w{1,3}|[^\w\s]")

    def spans(self, texts: Sequence[str]) -> list[list[tuple[int, int]]]:
        return [[m.span() for m in self._TOKEN.finditer(t)] for t in texts]


class HFTokenizer:
    """A Hugging Face fast tokenizer (``tokenizer.json``) as a :class:`Tokenizer`."""

    def __init__(self, tokenizer, name: str):
        from tokenizers import Tokenizer as _Tok

        # A private copy: transformers switches truncation/padding on the shared object per call.
        self._tok, self.name = _Tok.from_str(tokenizer.to_str()), name
        self._tok.no_truncation()
        self._tok.no_padding()

    @classmethod
    def from_model(cls, model: str, name: str | None = None, settings=None) -> "HFTokenizer":
        """Load ``tokenizer.json`` from a model folder (``koqa:`` names resolve first)."""
        from tokenizers import Tokenizer as _Tok

        from koqa.models.registry import resolve_model

        path = Path(resolve_model(model, settings)) / "tokenizer.json"
        if not path.is_file():
            raise InvalidInput("tokenizer", model, f"no tokenizer.json at {path}")
        return cls(_Tok.from_file(str(path)), name or model)

    def spans(self, texts: Sequence[str]) -> list[list[tuple[int, int]]]:
        encs = self._tok.encode_batch(list(texts), add_special_tokens=False)
        return [[tuple(o) for o in e.offsets if o[1] > o[0]] for e in encs]


@dataclass(frozen=True)
class _Unit:  # a sentence, or a token-bounded piece of an overlong one
    start: int
    end: int
    n_tokens: int
    terms: tuple[str, ...]


class Chunker:
    """Split documents into :class:`Chunk` s; Kiwi is loaded once per chunker."""

    def __init__(self, tokenizer: Tokenizer, *, max_tokens: int = 320, overlap_sentences: int = 1,
                 title_context: bool = True, analyzer: KiwiAnalyzer | None = None):
        if max_tokens < 8:
            raise InvalidInput("max_tokens", max_tokens, "must be at least 8")
        if overlap_sentences < 0:
            raise InvalidInput("overlap_sentences", overlap_sentences, "must be >= 0")
        self.tokenizer, self.max_tokens, self.overlap = tokenizer, max_tokens, overlap_sentences
        self.title_context = title_context
        self.analyzer = analyzer or KiwiAnalyzer()

    @classmethod
    def default(cls, settings=None, **kwargs: Any) -> "Chunker":
        """The me5-small-ko tokenizer (the reader's and the default embedder's)."""
        return cls(HFTokenizer.from_model("koqa:e5-small-ko", settings=settings), **kwargs)

    @property
    def settings(self) -> dict[str, Any]:
        """What the index records: chunks made with other settings would not match."""
        return {"tokenizer": self.tokenizer.name, "max_tokens": self.max_tokens,
                "overlap_sentences": self.overlap, "title_context": self.title_context,
                "analyzer": self.analyzer.name}

    def embed_text(self, title: str, text: str) -> str:
        """What the embedder sees for a passage: the document title gives it context.

        With ``title_context`` the title is also prepended here and its terms are added to
        every chunk's BM25 terms; offsets always refer to the document text alone.
        """
        return f"{title}\n{text}" if self.title_context and title else text

    def chunk(self, document: Document) -> list[Chunk]:
        return self.chunk_many([document])[0]

    def chunk_many(self, documents: Sequence[Document]) -> list[list[Chunk]]:
        """Chunk several documents with one Kiwi batch and one tokenizer batch."""
        paragraphs = [(i, s, e) for i, d in enumerate(documents) for s, e in _paragraphs(d.text)]
        sentences = self.analyzer.sentences([documents[i].text[s:e] for i, s, e in paragraphs])
        units_per_doc: list[list[tuple[int, int, tuple[str, ...], tuple[int, ...]]]] = [[] for _ in documents]
        for (i, s, e), sents in zip(paragraphs, sentences):
            units_per_doc[i].extend(_cover(documents[i].text, s, e, sents))
        flat = [(i, u) for i, us in enumerate(units_per_doc) for u in us]
        spans = self.tokenizer.spans([documents[i].text[u[0]:u[1]] for i, u in flat])
        units: list[list[_Unit]] = [[] for _ in documents]
        for (i, (s, e, terms, starts)), sp in zip(flat, spans):
            units[i].extend(self._split_long(s, sp, terms, starts, e))
        chunks = [self._verified(d, us, self._pack(us)) for d, us in zip(documents, units)]
        if self.title_context:
            titles = self.analyzer.terms_many([d.title for d in documents])
            chunks = [[replace(c, terms=tuple(t) + c.terms) for c in cs] for cs, t in zip(chunks, titles)]
        return chunks

    def _split_long(self, start: int, spans, terms, term_starts, end: int) -> list[_Unit]:
        if len(spans) <= self.max_tokens:
            return [_Unit(start, end, len(spans), terms)]
        pieces = []
        for k in range(0, len(spans), self.max_tokens):
            a = start + spans[k][0] if k else start
            b = start + spans[k + self.max_tokens][0] if k + self.max_tokens < len(spans) else end
            n = min(self.max_tokens, len(spans) - k)
            pieces.append(_Unit(a, b, n, tuple(t for t, ts in zip(terms, term_starts) if a <= ts < b)))
        return pieces

    def _pack(self, units: list[_Unit]) -> list[tuple[int, int]]:
        """Greedy packing; returns unit ranges [i, j) of each passage."""
        ranges, i = [], 0
        while i < len(units):
            j, total = i, 0
            while j < len(units) and (j == i or total + units[j].n_tokens <= self.max_tokens):
                total += units[j].n_tokens
                j += 1
            ranges.append((i, j))
            if j >= len(units):
                break
            nxt = max(i + 1, j - self.overlap)
            while nxt < j and sum(u.n_tokens for u in units[nxt:j + 1]) > self.max_tokens:
                nxt += 1
            i = nxt
        return ranges

    def _verified(self, doc: Document, us: list[_Unit], ranges: list[tuple[int, int]]) -> list[Chunk]:
        """Count each passage as a whole; drop trailing sentences where joining added tokens."""
        chunks: list[Chunk] = []
        texts = [doc.text[us[i].start:us[j - 1].end] for i, j in ranges]
        counts = [len(s) for s in self.tokenizer.spans(texts)] if texts else []
        for (i, j), n in zip(ranges, counts):
            while n > self.max_tokens and j - i > 1:
                j -= 1
                n = len(self.tokenizer.spans([doc.text[us[i].start:us[j - 1].end]])[0])
            s, e = us[i].start, us[j - 1].end
            terms = tuple(t for u in us[i:j] for t in u.terms)
            chunks.append(Chunk(len(chunks), s, e, doc.text[s:e], terms, n))
        return chunks


def _paragraphs(text: str) -> list[tuple[int, int]]:
    """Spans of the non-blank paragraphs of ``text``."""
    out, pos = [], 0
    for m in _PARAGRAPH_BREAK.finditer(text):
        out.append((pos, m.start()))
        pos = m.end()
    out.append((pos, len(text)))
    return [(s + _lead(text, s, e), e - _trail(text, s, e)) for s, e in out if text[s:e].strip()]


def _lead(text: str, s: int, e: int) -> int:
    return len(text[s:e]) - len(text[s:e].lstrip())


def _trail(text: str, s: int, e: int) -> int:
    return len(text[s:e]) - len(text[s:e].rstrip())


def _cover(text: str, p_start: int, p_end: int, sents: list[Sentence]):
    """Units covering the whole paragraph: each sentence runs until the next one starts.

    Kiwi may leave characters between sentences (bullets, stray symbols); extending the
    units keeps every character of the document inside some passage.
    """
    starts = sorted({min(s.start, p_end - p_start) for s in sents} | {0})
    bounds = starts + [p_end - p_start]
    terms_at = sorted((ts + p_start, t) for s in sents for t, ts in zip(s.terms, s.term_starts))
    positions = [ts for ts, _ in terms_at]
    out = []
    for a, b in zip(bounds, bounds[1:]):
        a, b = a + p_start, b + p_start
        b -= _trail(text, a, b)
        a += _lead(text, a, b)
        if b > a:
            sel = terms_at[bisect_left(positions, a):bisect_left(positions, b)]
            out.append((a, b, tuple(t for _, t in sel), tuple(ts for ts, _ in sel)))
    return out
