"""Request and response bodies of the HTTP API (pydantic; they generate the OpenAPI docs).

Requests are strict (no "5" for 5) and reject unknown fields, so a typo in a
field name is a 422 naming that field rather than a silently ignored option.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from koqa.pipeline.qa import MAX_ANSWERS, MAX_PASSAGES, MAX_QUESTION_CHARS
from koqa.retriever.base import Mode


# Bounds on one reader request's cost. The input count stays below the server's smallest reader
# queue (ServerConfig.max_queue, default 64), so a request the schema admits can be admitted.
MAX_READER_INPUTS = 32
MAX_CONTEXT_CHARS = 20_000
MAX_REQUEST_CHARS = 200_000


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be empty")
    return value


class AskRequest(_Strict):
    question: str = Field(min_length=1, max_length=MAX_QUESTION_CHARS, examples=["훈민정음을 창제한 왕은 누구인가?"])
    collection: str = Field("default", min_length=1, max_length=200)
    top_k_passages: int = Field(20, ge=1, le=MAX_PASSAGES, description="passages retrieved and read")
    top_n_answers: int = Field(5, ge=1, le=MAX_ANSWERS, description="answers returned")
    mode: Mode = "hybrid"
    threshold: float | None = Field(None, ge=0.0, le=1.0, description="abstain below this confidence (default: server's)")
    return_passages: bool = Field(False, description="include each answer's whole source passage")
    # values are checked by koqa.store.filters (a 400 naming the key), whose messages beat a union's
    filters: dict[str, Any] | None = Field(
        None, examples=[{"source": "규정.pdf", "dept": ["법무", "인사"]}],
        description="read only documents whose doc_id, title, source or metadata key equals the value "
                    "(a string, number or boolean) or any value of a list; all keys must match")

    check_blank = field_validator("question", "collection")(_not_blank)


class SearchRequest(_Strict):
    query: str = Field(min_length=1, max_length=MAX_QUESTION_CHARS, examples=["훈민정음 창제"])
    collection: str = Field("default", min_length=1, max_length=200)
    k: int = Field(10, ge=1, le=1000, description="passages returned")
    mode: Mode = "hybrid"
    filters: dict[str, Any] | None = Field(None, description="as in /ask")

    check_blank = field_validator("query", "collection")(_not_blank)


class HitOut(BaseModel):
    rank: int
    passage_id: str
    doc_id: str
    title: str
    source: str
    start: int = Field(description="offset of the passage in its document")
    end: int
    text: str
    score: float = Field(description="the score ranked by (fused RRF score in hybrid mode)")
    scores: dict[str, float] = Field(description="each retriever's own score")
    ranks: dict[str, int] = Field(description="each retriever's 1-based rank")


class SearchResponse(BaseModel):
    query: str
    collection: str
    hits: list[HitOut]
    timings: dict[str, float]


class PassageOut(BaseModel):
    id: str
    text: str
    start: int = Field(description="offset of the passage in its document")
    answer_start: int = Field(description="offset of the answer in this passage's text")
    answer_end: int


class AnswerOut(BaseModel):
    text: str
    score: float = Field(description="calibrated combined confidence in [0, 1]")
    reader_score: float
    retrieval_score: float
    doc_id: str
    doc_title: str
    passage_id: str
    start: int = Field(description="offset of the answer in the original document")
    end: int
    context: str = Field(description="snippet with the answer in **bold**")
    sources: list[dict[str, Any]] = Field(description="every place the same answer was read")
    passage: PassageOut | None = None


class AskResponse(BaseModel):
    question: str
    collection: str
    no_answer: bool = Field(description="true when the best confidence is below the threshold")
    no_answer_score: float
    threshold: float
    answers: list[AnswerOut]
    timings: dict[str, float]


class DocumentIn(_Strict):
    id: str | None = Field(None, min_length=1, max_length=500, description="default: derived from the text")
    text: str = Field(min_length=1)
    title: str = ""
    source: str = ""
    meta: dict[str, Any] = Field(default_factory=dict)

    check_blank = field_validator("text")(_not_blank)


class IngestRequest(_Strict):
    documents: list[DocumentIn] = Field(min_length=1, max_length=10_000)


class IngestResponse(BaseModel):
    collection: str
    added: int
    updated: int
    skipped: int
    failed: int
    documents: list[str] = Field(description="ids of the documents in this request")
    errors: list[dict[str, str]] = Field(default_factory=list, description="documents that failed, with why")


class DocumentOut(BaseModel):
    id: str
    title: str
    source: str
    text: str | None = Field(None, description="only when one document is fetched")
    meta: dict[str, Any] = Field(default_factory=dict, description="its metadata, plus passages/chars/updated_at")


class CollectionOut(BaseModel):
    name: str


class ReaderInput(_Strict):
    question: str = Field(min_length=1, max_length=MAX_QUESTION_CHARS)
    context: str = Field(min_length=1, max_length=MAX_CONTEXT_CHARS)

    check_blank = field_validator("question", "context")(_not_blank)


class ReaderParameters(_Strict):
    """The Hugging Face question-answering parameters (same names and defaults)."""

    top_k: int = Field(1, ge=1, le=MAX_ANSWERS)
    doc_stride: int | None = Field(None, ge=1, le=2048)
    max_answer_len: int = Field(15, ge=1, le=512)
    max_seq_len: int | None = Field(None, ge=32, le=4096)
    max_question_len: int | None = Field(None, ge=1, le=512, description="longer questions are refused, not cut")
    handle_impossible_answer: bool = False
    align_to_words: bool | None = Field(
        None, description="koqa aligns answers to Korean morphemes, not whitespace words: true cuts trailing "
                          "particles (세종대왕은 → 세종대왕), false returns raw token spans; default: the server's reader")


class ReaderRequest(_Strict):
    inputs: ReaderInput | list[ReaderInput]
    parameters: ReaderParameters = Field(default_factory=ReaderParameters)

    @field_validator("inputs")
    @classmethod
    def _some(cls, value):
        items = value if isinstance(value, list) else [value]
        if not 1 <= len(items) <= MAX_READER_INPUTS:
            raise ValueError(f"must hold 1 to {MAX_READER_INPUTS} inputs")
        if sum(len(i.context) for i in items) > MAX_REQUEST_CHARS:
            raise ValueError(f"contexts must hold at most {MAX_REQUEST_CHARS} characters in all")
        return value


class ReaderAnswer(BaseModel):
    """One answer exactly as the Hugging Face question-answering task returns it."""

    score: float
    start: int
    end: int
    answer: str


class ErrorDetail(BaseModel):
    field: str | None
    message: str


class ErrorBody(BaseModel):
    error: ErrorDetail
