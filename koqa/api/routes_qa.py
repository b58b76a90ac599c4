"""Question answering routes: ``POST /ask``, ``POST /search``, ``POST /models/reader`` (Hugging Face style), ``GET /health``."""

from __future__ import annotations

import time
from dataclasses import asdict

from fastapi import APIRouter, Depends

from koqa.api.app import ServerState, state
from koqa.api.batcher import ReadOptions
from koqa.api.schemas import (AnswerOut, AskRequest, AskResponse, ErrorBody, HitOut, PassageOut, ReaderAnswer,
                               ReaderRequest, SearchRequest, SearchResponse)
from koqa.pipeline.depth import merge_stages
from koqa.pipeline.qa import QAResult, spans_to_read
from koqa.types import Answer

router = APIRouter()

ERRORS = {code: {"model": ErrorBody} for code in (400, 401, 404, 413, 422, 503)}


@router.get("/health", tags=["server"])
async def health(st: ServerState = Depends(state)) -> dict:
    """Liveness, the loaded models and the micro-batcher's counters (no API key needed)."""
    return {
        "status": "ok",
        "reader": getattr(st.reader, "name", type(st.reader).__name__),
        "embedder": getattr(getattr(st.store, "embedder", None), "name", None),
        "batcher": {**asdict(st.batcher.stats), "queued": st.batcher.queued,
                    "max_batch_size": st.config.max_batch_size, "max_wait_ms": st.config.max_wait_ms,
                    "max_queue": st.config.max_queue},
    }


@router.post("/ask", response_model=AskResponse, responses=ERRORS, tags=["qa"])
async def ask(req: AskRequest, st: ServerState = Depends(state)) -> AskResponse:
    """Retrieve passages of ``collection``, read them (micro-batched with other requests), rank answers."""
    pipe = st.pipeline
    question = req.question.strip()
    t0 = time.perf_counter()
    hits = await st.in_store(pipe.retrieve, question, req.collection, req.top_k_passages, req.mode, req.filters)
    t1 = time.perf_counter()
    options = ReadOptions(top_k=spans_to_read(req.top_n_answers), max_answer_len=pipe.max_answer_len)
    texts = [h.passage.text for h in hits]
    spans, n_read = [], 0
    for stage, (lo, hi) in enumerate(pipe.stages(len(hits))):  # one stage unless adaptive depth is on
        if stage and pipe.decisive(question, hits, spans, req.top_n_answers):
            break
        new = await st.batcher.submit(question, texts[lo:hi], options)
        spans, n_read = merge_stages(spans, new, lo, options.top_k), hi
    t2 = time.perf_counter()
    result = pipe.assemble(question, hits, spans, req.top_n_answers, threshold=req.threshold,
                           timings={"retrieve_s": t1 - t0, "read_s": t2 - t1, "passages_read": n_read})
    return _ask_response(result, req)


@router.post("/search", response_model=SearchResponse, responses=ERRORS, tags=["qa"])
async def search(req: SearchRequest, st: ServerState = Depends(state)) -> SearchResponse:
    """Retrieval only: the ``k`` best passages of ``collection`` with their documents, offsets and scores."""
    t0 = time.perf_counter()
    hits = await st.in_store(st.pipeline.retrieve, req.query.strip(), req.collection, req.k, req.mode, req.filters)
    timings = {"retrieve_s": time.perf_counter() - t0}
    return SearchResponse(query=req.query, collection=req.collection,
                          hits=[HitOut(**h.record(r)) for r, h in enumerate(hits, 1)], timings=timings)


def _ask_response(result: QAResult, req: AskRequest) -> AskResponse:
    passages = {h.passage.id: h.passage for h in result.hits}
    answers = []
    for a in result.answers:
        out = AnswerOut(**_answer_fields(a))
        p = passages.get(a.passage_id)
        if req.return_passages and p is not None:
            out.passage = PassageOut(id=p.id, text=p.text, start=p.start,
                                     answer_start=a.start - p.start, answer_end=a.end - p.start)
        answers.append(out)
    return AskResponse(question=result.question, collection=req.collection, no_answer=result.no_answer,
                       no_answer_score=result.no_answer_score, threshold=result.threshold, answers=answers,
                       timings=dict(result.timings))


def _answer_fields(a: Answer) -> dict:
    fields = asdict(a)
    fields["sources"] = [dict(s) for s in a.sources]
    return fields


@router.post("/models/reader", responses=ERRORS, tags=["qa"],
             response_model=ReaderAnswer | list[ReaderAnswer] | list[ReaderAnswer | list[ReaderAnswer]])
async def read(req: ReaderRequest, st: ServerState = Depends(state)):
    """The Hugging Face question-answering task: ``{"inputs": {"question", "context"}, "parameters": {...}}``.

    Returns ``{"score", "start", "end", "answer"}`` per input; a list of them per
    input when ``top_k`` > 1 (and more than one answer was found), and a list over
    inputs when ``inputs`` is a list. ``score`` is the reader's probability of the span.
    """
    inputs = req.inputs if isinstance(req.inputs, list) else [req.inputs]
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
