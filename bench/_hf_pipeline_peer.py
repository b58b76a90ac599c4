"""Peer for bench/reader_speed.py: time transformers' own question-answering pipeline.

Runs inside a separate virtual environment with ``transformers==5.2.0`` (the last
release that ships ``pipeline("question-answering")``), so it imports nothing from
koqa.  Usage: ``python _hf_pipeline_peer.py JOB.json RESULT.json`` where JOB.json is
``{"model", "questions", "contexts", "batch_sizes", "max_seq_len", "doc_stride",
"max_answer_len", "max_question_len", "device", "dtype", "repeats"}``; RESULT.json
gets, per batch size, the wall seconds of every repeat and the answers of the last.
"""

from __future__ import annotations

import json
import sys
import time
import warnings


def _count_windows(tokenizer, questions, contexts, job) -> tuple[int, int]:
    """(windows, real tokens) the pipeline feeds the model, tokenised as its preprocess does."""
    windows = tokens = 0
    for q, c in zip(questions, contexts):
        enc = tokenizer(q, c, truncation="only_second", max_length=job["max_seq_len"], stride=job["doc_stride"],
                        return_overflowing_tokens=True)
        windows += len(enc["input_ids"])
        tokens += sum(len(ids) for ids in enc["input_ids"])
    return windows, tokens


def _sync(torch, device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def main(job_path: str, out_path: str) -> None:
    import torch
    import transformers
    from transformers import AutoModelForQuestionAnswering, AutoTokenizer, pipeline

    warnings.filterwarnings("ignore")
    transformers.logging.set_verbosity_error()
    job = json.loads(open(job_path, encoding="utf-8").read())
    if job.get("threads"):
        torch.set_num_threads(job["threads"])
    dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[job["dtype"]]
    device = job["device"]
    tok = AutoTokenizer.from_pretrained(job["model"])
    model = AutoModelForQuestionAnswering.from_pretrained(job["model"], dtype=dtype).to(device).eval()
    pipe = pipeline("question-answering", model=model, tokenizer=tok, device=torch.device(device))
    qs, cs = job["questions"], job["contexts"]
    opts = dict(max_seq_len=job["max_seq_len"], doc_stride=job["doc_stride"], max_answer_len=job["max_answer_len"],
                max_question_len=job["max_question_len"], align_to_words=False, top_k=1)
    windows, tokens = _count_windows(tok, qs, cs, job)
    result = {"transformers": transformers.__version__, "torch": torch.__version__, "threads": torch.get_num_threads(),
              "windows": windows, "tokens": tokens, "options": opts, "runs": {}}
    for bs in job["batch_sizes"]:
        pipe(question=qs[:2], context=cs[:2], batch_size=bs, **opts)  # warm-up
        times, answers = [], []
        for _ in range(job["repeats"]):
            _sync(torch, device)
            t0 = time.perf_counter()
            out = pipe(question=qs, context=cs, batch_size=bs, **opts)
            _sync(torch, device)
            times.append(time.perf_counter() - t0)
            out = out if isinstance(out, list) else [out]
            answers = [a["answer"] if isinstance(a, dict) else (a[0]["answer"] if a else "") for a in out]
        result["runs"][str(bs)] = {"seconds": times, "answers": answers}
        print(f"pipeline batch {bs}: best {min(times):.2f}s", file=sys.stderr, flush=True)
    with open(out_path, "w", encoding="utf-8") as f:
        json.dump(result, f, ensure_ascii=False)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
