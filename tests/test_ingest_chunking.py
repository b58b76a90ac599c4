"""Chunker: whole sentences, token budget, overlap, long sentences, offsets that always hold."""

from __future__ import annotations

import pytest

from koqa.errors import InvalidInput
from koqa.ingest.chunking import Chunker, HFTokenizer, RegexTokenizer
from koqa.text.kiwi import KiwiAnalyzer
from koqa.types import Document

SENTENCES = ["세종대왕은 1443년에 훈민정음을 창제하였다.", "집현전 학자들이 이를 도왔다.", "훈민정음은 1446년에 반포되었다.",
             "이순신은 임진왜란 때 거북선을 이끌었다.", "한글날은 10월 9일이다."]


@pytest.fixture(scope="module")
def analyzer():
    return KiwiAnalyzer()  # Kiwi loads once for the module (about a second)


def _covered(doc: Document, chunks) -> bool:
    inside = set()
    for c in chunks:
        inside.update(range(c.start, c.end))
    return all(ch.isspace() or i in inside for i, ch in enumerate(doc.text))


def test_passages_are_whole_sentences_with_exact_offsets(analyzer):
    doc = Document(id="d", text=" ".join(SENTENCES) + "\n\n" + " ".join(SENTENCES[:2]))
    chunker = Chunker(RegexTokenizer(), max_tokens=20, overlap_sentences=0, analyzer=analyzer)
    chunks = chunker.chunk(doc)
    assert len(chunks) > 2
    sentence_starts = {i for s in SENTENCES for i in range(len(doc.text)) if doc.text.startswith(s, i)}
    for c in chunks:
        assert doc.text[c.start:c.end] == c.text
        assert c.n_tokens <= 20
        assert c.start in sentence_starts
        assert c.text.rstrip().endswith(".")
    assert [c.index for c in chunks] == list(range(len(chunks)))
    assert _covered(doc, chunks)


def test_overlap_repeats_the_last_sentence(analyzer):
    doc = Document(id="d", text=" ".join(SENTENCES))
    no_overlap = Chunker(RegexTokenizer(), max_tokens=20, overlap_sentences=0, analyzer=analyzer).chunk(doc)
    overlap = Chunker(RegexTokenizer(), max_tokens=20, overlap_sentences=1, analyzer=analyzer).chunk(doc)
    assert len(overlap) > len(no_overlap)
    for a, b in zip(overlap, overlap[1:]):
        assert a.start < b.start < a.end <= b.end  # each passage shares a sentence with the next
    assert all(a.end <= b.start for a, b in zip(no_overlap, no_overlap[1:]))


def test_a_sentence_longer_than_the_budget_is_cut_at_token_boundaries(analyzer):
    long = "가나다 " * 200 + "끝."
    doc = Document(id="d", text=SENTENCES[0] + " " + long)
    chunks = Chunker(RegexTokenizer(), max_tokens=32, overlap_sentences=0, analyzer=analyzer).chunk(doc)
    assert all(c.n_tokens <= 32 for c in chunks)
    assert all(doc.text[c.start:c.end] == c.text for c in chunks)
    assert all(not c.text.startswith("나") for c in chunks)  # never inside a token
    assert _covered(doc, chunks)


def test_terms_are_kiwi_content_morphemes(analyzer):
    doc = Document(id="d", text=SENTENCES[0], title="세종")
    chunk = Chunker(RegexTokenizer(), analyzer=analyzer, title_context=False).chunk(doc)[0]
    assert {"세종", "대왕", "1443", "훈민정음", "창제"} <= set(chunk.terms)
    assert not {"은", "에", "을", "었", "다"} & set(chunk.terms)
    titled = Chunker(RegexTokenizer(), analyzer=analyzer, title_context=True)
    assert titled.chunk(doc)[0].terms[0] == "세종"
    assert titled.embed_text("세종", "본문") == "세종\n본문"


def test_chunk_many_matches_chunk_one_by_one(analyzer):
    docs = [Document(id=str(i), text=" ".join(SENTENCES[i:])) for i in range(4)]
    chunker = Chunker(RegexTokenizer(), max_tokens=16, analyzer=analyzer)
    assert chunker.chunk_many(docs) == [chunker.chunk(d) for d in docs]


def test_settings_and_bad_values(analyzer):
    chunker = Chunker(RegexTokenizer(), max_tokens=100, overlap_sentences=2, analyzer=analyzer)
    assert chunker.settings["max_tokens"] == 100 and chunker.settings["tokenizer"] == "regex-w3"
    with pytest.raises(InvalidInput):
        Chunker(RegexTokenizer(), max_tokens=2)
    with pytest.raises(InvalidInput):
        Chunker(RegexTokenizer(), overlap_sentences=-1)


def test_real_tokenizer_budget_and_emoji_offsets(shared_dir, analyzer):
    tok = HFTokenizer.from_model(str(shared_dir / "models" / "me5-small-ko"), name="koqa:e5-small-ko")
    text = ("이모지😀가 들어간 문장입니다. " + " ".join(SENTENCES)) * 12
    doc = Document(id="d", text=text)
    chunks = Chunker(tok, max_tokens=64, analyzer=analyzer).chunk(doc)
    for c in chunks:
        assert doc.text[c.start:c.end] == c.text
        assert len(tok.spans([c.text])[0]) == c.n_tokens <= 64
    assert _covered(doc, chunks)
