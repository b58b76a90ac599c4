"""Question answering routes: ``POST /ask``, ``POST /search``, ``POST /models/reader`` (Hugging Face style), ``GET /health``."""

from __future__ import annotations

import asyncio
import hmac
import time
from dataclasses import asdict

from fastapi import APIRouter, Depends, Request

from koqa.api.batcher import Overloaded, ReadOptions
from koqa.api.errors import API_KEY_HEADER
from koqa.api.state import ServerState, state
from koqa.errors import InvalidInput
from koqa.api.schemas import (AskRequest, AskResponse, ErrorBody, HitOut, ReaderAnswer, ReaderRequest,
                               SearchRequest, SearchResponse)

router = APIRouter()

ERRORS = {code: {"model": ErrorBody} for code in (400, 401, 404, 413, 422, 503)}


@router.get("/health", tags=["server"])
async def health(request: Request, st: ServerState = Depends(state)) -> dict:
    """Liveness (no API key needed); with the key, or on a server without one, also the loaded
    models, the reader's backend and why, and the micro-batcher's counters."""
    key = st.config.api_key or st.settings.api_key
    if key and not hmac.compare_digest(request.headers.get(API_KEY_HEADER, "").encode(), key.encode()):
        return {"status": "ok"}
    choice = getattr(st.reader, "backend", None)  # a Choice for a QAReader; injected readers may have none
    return {
        "status": "ok",
        "reader": getattr(st.reader, "name", type(st.reader).__name__),
        "reader_backend": {"backend": choice.backend, "reason": choice.reason} if choice is not None else None,
        "embedder": getattr(getattr(st.store, "embedder", None), "name", None),
        "batcher": {**asdict(st.batcher.stats), "queued": st.batcher.queued,
                    "max_batch_size": st.config.max_batch_size, "max_wait_ms": st.config.max_wait_ms,
                    "max_queue": st.config.max_queue},
    }


@router.post("/ask", response_model=AskResponse, responses=ERRORS, tags=["qa"])
async def ask(req: AskRequest, st: ServerState = Depends(state)) -> AskResponse:
    """Retrieve passages of ``collection``, read them (micro-batched with other requests), rank answers.

    At most ``max_asks`` requests are admitted at a time; more get 503 + ``Retry-After``,
    as does one still unanswered after ``ask_deadline_s``.
    """
    config = st.config
    if st.asks_in_flight >= config.max_asks:
        raise Overloaded(config.retry_after_s, f"{config.max_asks} questions are being answered")
    st.asks_in_flight += 1
    try:
        async with asyncio.timeout(config.ask_deadline_s):
            result = await st.pipeline.arun(req.question, req.collection, req.top_k_passages, req.top_n_answers,
                                            req.mode, threshold=req.threshold, filters=req.filters,
                                            read=st.batcher.read_batch)
    except TimeoutError:
        raise Overloaded(config.retry_after_s, f"no answer within {config.ask_deadline_s:g} s") from None
    finally:
        st.asks_in_flight -= 1
    return AskResponse(**result.record(req.collection, return_passages=req.return_passages))


@router.post("/search", response_model=SearchResponse, responses=ERRORS, tags=["qa"])
async def search(req: SearchRequest, st: ServerState = Depends(state)) -> SearchResponse:
    """Retrieval only: the ``k`` best passages of ``collection`` with their documents, offsets and scores."""
    t0 = time.perf_counter()
    hits = await st.in_store(st.pipeline.retrieve, req.query.strip(), req.collection, req.k, req.mode, req.filters)
    timings = {"retrieve_s": time.perf_counter() - t0}
    return SearchResponse(query=req.query, collection=req.collection,
                          hits=[HitOut(**h.record(r)) for r, h in enumerate(hits, 1)], timings=timings)


@router.post("/models/reader", responses=ERRORS, tags=["qa"],
             response_model=ReaderAnswer | list[ReaderAnswer] | list[ReaderAnswer | list[ReaderAnswer]])
async def read(req: ReaderRequest, st: ServerState = Depends(state)):
    """The Hugging Face question-answering task: ``{"inputs": {"question", "context"}, "parameters": {...}}``.

    Returns ``{"score", "start", "end", "answer"}`` per input; a list of them per
    input when ``top_k`` > 1 (and more than one answer was found), and a list over
    inputs when ``inputs`` is a list. ``score`` is the reader's probability of the span.
    """
    inputs = req.inputs if isinstance(req.inputs, list) else [req.inputs]
    if len(inputs) > st.config.max_queue:  # it could never be admitted whole: say so, not 503 forever
        raise InvalidInput("inputs", len(inputs), f"this server reads at most {st.config.max_queue} inputs per request")
    p = req.parameters
    options = ReadOptions(top_k=p.top_k, max_answer_len=p.max_answer_len, max_seq_len=p.max_seq_len,
                          handle_impossible_answer=p.handle_impossible_answer, doc_stride=p.doc_stride,
                          max_question_len=p.max_question_len, trim_particles=p.align_to_words)
    results = await st.batcher.submit_many([(i.question, [i.context]) for i in inputs], options)
    outputs = []
    for spans in results:
        answers = [{"score": float(s.prob), "start": s.start, "end": s.end, "answer": s.text} for s in spans]
        if not answers:  # every window was too short to hold a span
            answers = [{"score": 0.0, "start": 0, "end": 0, "answer": ""}]
        outputs.append(answers[0] if len(answers) == 1 else answers)
    return outputs if isinstance(req.inputs, list) else outputs[0]
