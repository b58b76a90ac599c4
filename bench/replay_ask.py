"""``ask`` on a machine without the corpus: replay retrieval recorded here, time the rest there.

A lent GPU machine cannot hold koqa's retrieval stack (the Kiwi model alone is 88 MB, over
the device tool's 64 MiB), so ``dump`` records, for the open-domain benchmark's questions,
the top-k hits of the real hybrid retriever and its time per question; ``run`` answers each
question with ``QAPipeline`` over a retriever that returns those hits, on any device, and
reports ask latency (replayed retrieval costs ~0; the recorded retrieval time is reported
beside it), where reading time goes, and end-to-end EM/F1.

    python bench/replay_ask.py dump --limit 200 --out .carry/ask_hits.json.gz     # here
    python bench/replay_ask.py run --hits .carry/ask_hits.json.gz --reader DIR --device cuda --read-first 0
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a bare checkout (no install there)

from koqa.pipeline.qa import check_question  # noqa: E402
from koqa.settings import Settings  # noqa: E402
from koqa.types import Hit, Passage  # noqa: E402

COLLECTION = "replay"


class ReplayRetriever:
    """A ``Retriever`` that answers each recorded question with its recorded hits."""

    def __init__(self, hits: dict[str, list[Hit]]):
        self.hits = {check_question(q): h for q, h in hits.items()}  # as QAPipeline passes questions on

    def retrieve(self, query: str, k: int = 10, *, collection: str = COLLECTION, mode: str = "hybrid",
                 filters=None) -> list[Hit]:
        return self.hits[query][:k]


def dump(args) -> None:
    import open_domain  # noqa: the benchmark's own corpus and question sample

    from koqa.training.calibrate import KORQUAD_COLLECTION
    from koqa.training.korquad import load_squad
    from koqa.settings import Settings

    settings = Settings.from_env()
    data = load_squad(args.korquad)["data"]
    questions = open_domain.eval_questions(data, args.limit, args.seed)
    store, _ = open_domain.build_store(settings, settings.embedder, data, 100, None)
    store.retrieve(questions[0].text, args.k, collection=KORQUAD_COLLECTION)  # warm-up
    records = []
    for q in questions:
        t0 = time.perf_counter()
        hits = store.retrieve(q.text, args.k, collection=KORQUAD_COLLECTION)
        records.append({"id": q.id, "question": q.text, "answers": list(q.answers), "retrieve_s": time.perf_counter() - t0,
                        "hits": [{"passage": vars(h.passage), "score": h.score, "scores": dict(h.scores),
                                  "ranks": dict(h.ranks)} for h in hits]})
    store.close()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(args.out, "wt", encoding="utf-8") as f:
        json.dump({"k": args.k, "embedder": settings.embedder, "questions": records}, f, ensure_ascii=False)
    print(f"wrote {len(records)} questions × {args.k} hits to {args.out}")


def load_hits(path: Path) -> tuple[list[dict], dict[str, list[Hit]]]:
    with gzip.open(path, "rt", encoding="utf-8") as f:
        records = json.load(f)["questions"]
    hits = {r["question"]: [Hit(Passage(**h["passage"]), h["score"], h["scores"], h["ranks"]) for h in r["hits"]]
            for r in records}
    return records, hits


def run(args) -> dict:
    from koqa.pipeline import QAPipeline
    from koqa.pipeline.depth import ReadingDepth
    from koqa.reader import QAReader
    from koqa.training.korquad import evaluate

    records, hits = load_hits(args.hits)
    records = records[: args.limit] if args.limit else records
    reader = QAReader.from_pretrained(str(args.reader), device=args.device, backend=args.backend,
                                      trim_particles=args.trim)
    depth = ReadingDepth(args.read_first) if args.read_first else None
    pipe = QAPipeline(ReplayRetriever(hits), reader, depth=depth)
    for r in records[:3]:  # warm-up: CUDA kernels, allocator
        pipe.run(r["question"], COLLECTION, args.k)
    latency, read, passages, preds = [], [], [], {}
    for r in records:
        t0 = time.perf_counter()
        result = pipe.run(r["question"], COLLECTION, args.k)
        latency.append(time.perf_counter() - t0)
        read.append(result.timings["read_s"])
        passages.append(result.timings["passages_read"])
        preds[r["id"]] = result.answers[0].text if result.answers else ""
    scores = evaluate({r["id"]: r["answers"] for r in records}, preds)
    ms = lambda xs, p: round(1000 * float(np.percentile(xs, p)), 1)  # noqa: E731
    return {"reader": str(args.reader), "device": args.device, "backend": args.backend, "trim_particles": args.trim,
            "questions": len(records), "k": args.k, "depth": args.read_first or "all",
            "mean_passages_read": round(float(np.mean(passages)), 2),
            "ask_ms": {"p50": ms(latency, 50), "p95": ms(latency, 95)}, "read_ms": {"p50": ms(read, 50), "p95": ms(read, 95)},
            "recorded_retrieve_ms": {"p50": ms([r["retrieve_s"] for r in records], 50)},
            "exact_match": round(scores["exact_match"], 2), "f1": round(scores["f1"], 2)}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    d = sub.add_parser("dump")
    d.add_argument("--korquad", type=Path, default=Settings.from_env().shared / "data/korquad/KorQuAD_v1.0_dev.json.gz")
    d.add_argument("--limit", type=int, default=200)
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("--k", type=int, default=20)
    d.add_argument("--out", type=Path, default=ROOT / ".carry" / "ask_hits.json.gz")
    r = sub.add_parser("run")
    r.add_argument("--hits", type=Path, default=ROOT / ".carry" / "ask_hits.json.gz")
    r.add_argument("--reader", type=Path, required=True)
    r.add_argument("--device", default="cpu")
    r.add_argument("--backend", default="torch-fp32", help="torch-fp32 / torch-bf16 (the reader's precision)")
    r.add_argument("--trim", action=argparse.BooleanOptionalAction, default=False,
                   help="Korean particle trimming (needs kiwipiepy, which a GPU machine lacks)")
    r.add_argument("--k", type=int, default=20)
    r.add_argument("--read-first", type=int, default=0, help="adaptive depth: passages read first (0: all k at once)")
    r.add_argument("--limit", type=int, default=None)
    r.add_argument("--out", type=Path, default=None, help="JSON file (default: print only)")
    a = p.parse_args(argv)
    if a.cmd == "dump":
        sys.path.insert(0, str(ROOT / "bench"))
        dump(a)
        return
    result = run(a)
    print(json.dumps(result, ensure_ascii=False, indent=2))
    if a.out:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(json.dumps(result, ensure_ascii=False, indent=2) + "\n")


if __name__ == "__main__":
    main()
