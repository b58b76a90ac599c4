"""Reader spans over retrieved passages → merged, de-overlapped answer candidates.

A *candidate* is one distinct answer string (after :func:`normalize`) with every
place it was read (its *occurrences*), best first. Offsets are moved from the
passage into the original document here: ``doc_start = passage.start + span.start``.

>>> normalize("  세종대왕, ")
'세종대왕'
>>> highlight("조선의 세종대왕은 훈민정음을 창제하였다.", 4, 8)
'조선의 **세종대왕**은 훈민정음을 창제하였다.'
"""

from __future__ import annotations

import re
import string
import unicodedata
from dataclasses import dataclass
from typing import Sequence

from koqa.reader.base import Span
from koqa.types import Hit

_PUNCT = re.compile("[" + re.escape(string.punctuation) + "'\"《》〈〉‘’“”「」『』·…]")
SNIPPET_CHARS = 80  # characters of context kept on each side of the answer


def normalize(text: str) -> str:
    """The key under which answers count as duplicates: NFC, casefold, no punctuation/extra spaces."""
    text = _PUNCT.sub(" ", unicodedata.normalize("NFC", text).casefold())
    return " ".join(text.split())


@dataclass(frozen=True)
class Occurrence:
    """One reader span placed in its passage and document."""

    span: Span
    hit: Hit
    rank: int  # 1-based position of the hit in the retrieval list

    @property
    def doc_start(self) -> int:
        return self.hit.passage.start + self.span.start

    @property
    def doc_end(self) -> int:
        return self.hit.passage.start + self.span.end


@dataclass(frozen=True)
class Candidate:
    """A distinct answer string and all of its occurrences, best (highest span score) first."""

    key: str
    occurrences: tuple[Occurrence, ...]

    @property
    def best(self) -> Occurrence:
        return self.occurrences[0]

    @property
    def text(self) -> str:
        return self.best.span.text


def candidates(spans: Sequence[Span], hits: Sequence[Hit]) -> list[Candidate]:
    """Group spans by normalised text (keeping every source), then drop overlapping ones.

    Spans are read from ``contexts[i] = hits[i].passage.text``. Empty (null) spans
    are ignored. A candidate whose best occurrence overlaps, in the same document,
    the best occurrence of a higher-scored candidate (e.g. "세종대왕이" under
    "세종대왕") is dropped, so the list shows distinct answers.
    """
    groups: dict[str, list[Occurrence]] = {}
    for span in sorted(spans, key=lambda s: -s.score):
        key = normalize(span.text)
        if not key or not 0 <= span.context_index < len(hits):
            continue
        hit = hits[span.context_index]
        groups.setdefault(key, []).append(Occurrence(span, hit, span.context_index + 1))
    merged = [Candidate(key, tuple(_unique_places(occ))) for key, occ in groups.items()]
    kept: list[Candidate] = []
    for cand in sorted(merged, key=lambda c: -c.best.span.score):
        if not any(_overlaps(cand.best, other.best) for other in kept):
            kept.append(cand)
    return kept


def _unique_places(occurrences: list[Occurrence]) -> list[Occurrence]:
    """Overlapping passages can yield the same document span twice; keep it once."""
    seen, out = set(), []
    for occ in occurrences:
        place = (occ.hit.passage.doc_id, occ.doc_start, occ.doc_end)
        if place not in seen:
            seen.add(place)
            out.append(occ)
    return out


def _overlaps(a: Occurrence, b: Occurrence) -> bool:
    if a.hit.passage.doc_id != b.hit.passage.doc_id:
        return False
    return a.doc_start < b.doc_end and b.doc_start < a.doc_end


def highlight(text: str, start: int, end: int, width: int = SNIPPET_CHARS, mark: str = "**") -> str:
    """``text`` around ``[start:end]`` with the answer wrapped in ``mark``; cut ends get "…"."""
    left = max(0, start - width)
    right = min(len(text), end + width)
    if left > 0:  # cut at a space so no word is split
        space = text.find(" ", left, start)
        left = space + 1 if space != -1 else left
    if right < len(text):
        space = text.rfind(" ", end, right)
        right = space if space != -1 else right
    snippet = text[left:start] + mark + text[start:end] + mark + text[end:right]
    snippet = " ".join(snippet.split())
    return ("…" if left > 0 else "") + snippet + ("…" if right < len(text) else "")


def source_record(occ: Occurrence, retrieval_score: float) -> dict:
    """How an occurrence is listed in ``Answer.sources`` (plain JSON-able values)."""
    p = occ.hit.passage
    return {
        "doc_id": p.doc_id,
        "doc_title": p.title,
        "source": p.source,
        "passage_id": p.id,
        "start": occ.doc_start,
        "end": occ.doc_end,
        "passage_start": p.start,
        "reader_score": float(occ.span.score),
        "reader_prob": float(occ.span.prob),
        "retrieval_score": float(retrieval_score),
        "retrieval_rank": occ.rank,
        "context": highlight(p.text, occ.span.start, occ.span.end),
    }
