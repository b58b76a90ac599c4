"""Open-domain QA on KorQuAD 1.0 dev: end-to-end EM/F1, retrieval recall@k and ``ask`` latency.

    python bench/open_domain.py                                   # default reader and embedder
    python bench/open_domain.py --reader runs/en-ko --limit 300    # a trained folder, 300 questions
    python bench/open_domain.py --read-first 0                     # read all k passages at once

Corpus: the 40 eval-split articles (the last 40) plus the first ``--distractors``
train-split articles (default all 100), one document per article, in a store cached
under ``$KOQA_HOME/bench/open_domain`` (re-runs skip unchanged documents).
Questions: a seeded sample of ``--limit`` eval-split questions (all 1,719 without it).
For each: ``QAPipeline.run`` with top-``--k`` passages → the top answer is scored with
the official metric; recall@k = a passage of the gold article containing a gold answer
is among the top k; latency = wall time of one ``run`` (one question at a time, as a
user would ask). ``--closed`` also reads each question's gold paragraph alone, the
reader's closed-context EM/F1 on the same questions (the goal: end-to-end F1 within 5
points of it). ``--absent`` also asks every question of a collection holding only the
distractor articles, where the gold article (so, nearly always, the answer) is absent:
the abstain rate there and the false-answer rate (an answer given at or above the
threshold) say how well the calibration abstains. Prints a table and writes
bench/results/open_domain.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a script from a checkout

from bench._machine import cpu  # noqa: E402
from koqa.settings import READER_BACKENDS, Settings  # noqa: E402

SHARED = Settings.from_env().shared
RECALL_AT = (1, 5, 10, 20)


ABSENT_COLLECTION = "korquad-absent"


def build_store(settings, embedder_name: str, data: list[dict], distractors: int, store_dir: Path | None,
                absent: bool = False):
    """The cached store holding the eval articles + ``distractors`` train-split articles
    (and, with ``absent``, the distractors alone in :data:`ABSENT_COLLECTION`)."""
    from koqa.training.calibrate import article_documents, corpus_store

    docs = article_documents(data)
    keep = docs[:distractors] + docs[len(data) - 40:]
    store = corpus_store(settings, embedder_name, keep, store_dir)
    if absent:
        report = store.ingest(ABSENT_COLLECTION, docs[:distractors], create=True)
        print(f"absent-answer collection: {distractors} articles ({report.counts})")
    return store, len(keep)


SWEEP = (0.25, 0.35, 0.5, 0.65, 0.8)


def absent_answers(pipe, questions: list, k: int, present) -> dict:
    """Abstain and false-answer rates on questions whose gold article is not in the collection,
    and at each threshold of :data:`SWEEP` what it costs where the gold article is present:
    the fraction of those questions still answered (coverage) and the EM of the answered ones."""
    from koqa.training.korquad import exact_match

    asked = ask_each(pipe, questions, k, ABSENT_COLLECTION)
    answered = len(questions) - asked.abstained
    right = {q.id: max(float(exact_match(present.preds[q.id], g)) for g in q.answers) for q in questions}
    sweep = []
    for t in SWEEP:
        kept = [q.id for q in questions if present.confidence[q.id] >= t]
        sweep.append({"threshold": t,
                      "absent_false_answer_rate": round(np.mean([asked.confidence[q.id] >= t for q in questions]), 4),
                      "present_coverage": round(len(kept) / len(questions), 4),
                      "present_em_answered": round(100 * np.mean([right[i] for i in kept]), 2) if kept else None})
    return {"questions": len(questions), "abstain_rate": round(asked.abstained / len(questions), 4),
            "false_answer_rate": round(answered / len(questions), 4), "threshold_sweep": sweep}


def eval_questions(data: list[dict], limit: int | None, seed: int) -> list:
    """The benchmark's questions: a seeded sample of ``limit`` eval-split questions (all without it)."""
    from koqa.training.calibrate import article_questions

    questions = [q for q in article_questions(data) if int(q.doc_id.split("-")[1]) >= len(data) - 40]
    if limit and limit < len(questions):
        questions = random.Random(seed).sample(questions, limit)
    return questions


def recall_ranks(hits, q) -> int | None:
    """1-based rank of the first hit from the gold article that contains a gold answer."""
    for rank, h in enumerate(hits, 1):
        if h.passage.doc_id == q.doc_id and any(a.strip() in h.passage.text for a in q.answers):
            return rank
    return None


def closed_context(reader, questions, data: list[dict]) -> dict:
    """The reader alone on each question's gold paragraph (top-1), same questions."""
    from koqa.training.korquad import evaluate

    paragraph = {str(qa["id"]): p["context"] for art in data for p in art["paragraphs"] for qa in p["qas"]}
    preds = {}
    for i in range(0, len(questions), 16):
        chunk = questions[i:i + 16]
        spans = reader.read_batch([q.text for q in chunk], [[paragraph[q.id]] for q in chunk], top_k=1)
        preds.update({q.id: (s[0].text if s else "") for q, s in zip(chunk, spans)})
    return evaluate({q.id: list(q.answers) for q in questions}, preds)


@dataclass
class Asked:
    """What asking every question in turn recorded, one entry per question."""

    preds: dict = field(default_factory=dict)
    latency_s: list = field(default_factory=list)
    retrieve_s: list = field(default_factory=list)
    read_s: list = field(default_factory=list)
    passages_read: list = field(default_factory=list)
    ranks: list = field(default_factory=list)
    confidence: dict = field(default_factory=dict)  # the top answer's calibrated confidence (0: none)
    abstained: int = 0


def ask_each(pipe, questions: list, k: int, collection: str) -> Asked:
    asked = Asked()
    for n, q in enumerate(questions, 1):
        t0 = time.perf_counter()
        result = pipe.run(q.text, collection, k)
        asked.latency_s.append(time.perf_counter() - t0)
        asked.retrieve_s.append(result.timings["retrieve_s"])
        asked.read_s.append(result.timings["read_s"])
        asked.passages_read.append(result.timings["passages_read"])
        asked.preds[q.id] = result.answers[0].text if result.answers else ""
        asked.confidence[q.id] = result.answers[0].score if result.answers else 0.0
        asked.abstained += result.no_answer
        asked.ranks.append(recall_ranks(result.hits, q))
        if n % 25 == 0 or n == len(questions):
            print(f"\r{n}/{len(questions)} questions, p50 {np.median(asked.latency_s):.2f} s", end="", flush=True)
    print()
    return asked


def run(args) -> dict:
    import torch

    from koqa.pipeline import Calibration, QAPipeline
    from koqa.pipeline.depth import ReadingDepth
    from koqa.training.calibrate import KORQUAD_COLLECTION as COLLECTION
    from koqa.reader import QAReader
    from koqa.training.korquad import evaluate, load_squad
    from koqa.settings import Settings

    torch.set_num_threads(args.threads)
    settings = Settings.from_env()
    data = load_squad(args.korquad)["data"]
    questions = eval_questions(data, args.limit, args.seed)
    store, n_docs = build_store(settings, args.embedder or settings.embedder, data, args.distractors, args.store_dir,
                                absent=args.absent)
    reader = QAReader.from_pretrained(args.reader or settings.reader, backend=args.backend, settings=settings)
    depth = ReadingDepth(args.read_first, args.stop_confidence) if args.read_first else None
    calibration = Calibration.load(args.calibration) if args.calibration else None
    pipe = QAPipeline(store, reader, depth=depth, calibration=calibration)
    pipe.run(questions[0].text, COLLECTION, args.k)  # warm-up: lazy loads, first-call allocations

    asked = ask_each(pipe, questions, args.k, COLLECTION)
    golds = {q.id: list(q.answers) for q in questions}
    e2e = evaluate(golds, asked.preds)
    lat = np.array(asked.latency_s)
    out = {
        "questions": len(questions), "corpus_articles": n_docs, "k": args.k,
        "depth": {"read_first": args.read_first, "stop_confidence": args.stop_confidence} if depth else "all",
        "mean_passages_read": round(float(np.mean(asked.passages_read)), 2),
        "reader": args.reader or settings.reader, "backend": args.backend, "embedder": args.embedder or settings.embedder,
        "calibration": str(args.calibration or "the reader's packaged one (koqa/pipeline/calibrations/)"),
        "exact_match": round(e2e["exact_match"], 2), "f1": round(e2e["f1"], 2),
        "recall": {f"@{k}": round(100 * np.mean([r is not None and r <= k for r in asked.ranks]), 2)
                   for k in RECALL_AT if k <= args.k},
        "abstained_at_threshold": {"threshold": pipe.threshold, "fraction": round(asked.abstained / len(questions), 4)},
        "latency_s": {"p50": round(float(np.percentile(lat, 50)), 3), "p95": round(float(np.percentile(lat, 95)), 3),
                      "mean": round(float(lat.mean()), 3),
                      "mean_retrieve": round(float(np.mean(asked.retrieve_s)), 3), "mean_read": round(float(np.mean(asked.read_s)), 3)},
        "machine": {**cpu(), "torch_threads": torch.get_num_threads(), "python": platform.python_version()},
    }
    if args.closed:
        closed = closed_context(reader, questions, data)
        out["closed_context"] = {"exact_match": round(closed["exact_match"], 2), "f1": round(closed["f1"], 2)}
        out["f1_gap_to_closed"] = round(closed["f1"] - e2e["f1"], 2)
    if args.absent:
        out["absent_gold"] = absent_answers(pipe, questions, args.k, asked)
    store.close()
    return out


def print_table(r: dict) -> None:
    rows = [("questions", r["questions"]), ("corpus articles", r["corpus_articles"]), ("passages retrieved (k)", r["k"]),
            ("reading depth", r["depth"]), ("mean passages read", r["mean_passages_read"]),
            ("end-to-end EM", r["exact_match"]), ("end-to-end F1", r["f1"])]
    if "closed_context" in r:
        rows += [("closed-context EM", r["closed_context"]["exact_match"]),
                 ("closed-context F1", r["closed_context"]["f1"]), ("F1 gap (goal ≤ 5)", r["f1_gap_to_closed"])]
    rows += [(f"retrieval recall{k}", v) for k, v in r["recall"].items()]
    rows += [(f"ask latency {k} (s)", v) for k, v in r["latency_s"].items()]
    rows += [(f"abstained (< {r['abstained_at_threshold']['threshold']})", r["abstained_at_threshold"]["fraction"])]
    if "absent_gold" in r:
        rows += [("gold absent: abstain rate", r["absent_gold"]["abstain_rate"]),
                 ("gold absent: false answers", r["absent_gold"]["false_answer_rate"])]
        rows += [(f"at {s['threshold']}: absent answered / present answered, EM",
                  f"{s['absent_false_answer_rate']} / {s['present_coverage']}, {s['present_em_answered']}")
                 for s in r["absent_gold"]["threshold_sweep"]]
    print(f"reader {r['reader']} · embedder {r['embedder']} · {r['machine']['torch_threads']} torch threads")
    for name, value in rows:
        print(f"  {name:<28} {value}")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reader", default=None, help="reader name or folder (default: KOQA_READER / koqa:reader-small)")
    ap.add_argument("--embedder", default=None, help="embedder name (default: KOQA_EMBEDDER / koqa:e5-small-ko)")
    ap.add_argument("--backend", default="torch-fp32", choices=READER_BACKENDS, help="reader backend")
    ap.add_argument("--korquad", type=Path, default=SHARED / "data" / "korquad" / "KorQuAD_v1.0_dev.json.gz")
    ap.add_argument("--limit", type=int, default=None, help="a seeded sample of N eval-split questions")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--k", type=int, default=20, help="passages retrieved and read per question")
    ap.add_argument("--calibration", type=Path, default=None, help="calibration JSON (default: the packaged one)")
    ap.add_argument("--read-first", type=int, default=5, help="adaptive depth: passages read first (0: all k at once)")
    ap.add_argument("--stop-confidence", type=float, default=0.5, help="adaptive depth: stop at this confidence")
    ap.add_argument("--distractors", type=int, default=100, help="train-split articles added to the corpus (0-100)")
    ap.add_argument("--closed", action=argparse.BooleanOptionalAction, default=True,
                    help="also measure the reader on the gold paragraphs")
    ap.add_argument("--absent", action="store_true",
                    help="also ask each question where its gold article is absent (abstain / false-answer rate)")
    ap.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1))
    ap.add_argument("--store-dir", type=Path, default=None, help="where the benchmark store is cached")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "open_domain.json")
    args = ap.parse_args(argv)
    if not args.korquad.exists():
        raise SystemExit(f"KorQuAD dev not found at {args.korquad} (set KOQA_SHARED or --korquad)")
    result = run(args)
    print_table(result)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, ensure_ascii=False, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
