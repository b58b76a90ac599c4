"""Load and hostile-input check of a real ``koqa serve``: status histogram, latency, server memory.

    python bench/load.py                           # start koqa serve on samples/, 64 clients, 20 s per endpoint
    python bench/load.py --clients 16 --seconds 10
    python bench/load.py --url http://127.0.0.1:8000 --collection demo   # an already running server

Without ``--url`` it ingests ``samples/`` into a temporary ``KOQA_HOME`` and starts ``koqa serve``
(the built-in reader and embedder) on a free loopback port.  Phases, one after another:

* ``hostile``: each request of :func:`hostile_requests` once (bad files, names, Unicode, limits);
  the goal is 0 answers with status 5xx.
* ``/ask`` and ``/models/reader``: ``--clients`` clients, each sending its next request as
  soon as the last one is answered, for ``--seconds``: requests/s, the status histogram, p50/p95
  latency of 200s and of 503s (an overloaded server should refuse fast, not queue for ever).

The server's RSS is read from ``/proc`` before and after every phase.  Prints a table and
writes bench/results/load.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a script from a checkout

from bench._machine import cpu  # noqa: E402

QUESTIONS = ["훈민정음을 창제한 왕은 누구인가?", "훈민정음은 언제 반포되었나?", "직원은 재택근무를 주 몇 회 할 수 있나?"]
CONTEXT = "훈민정음은 1443년 조선의 세종대왕이 창제하여 1446년에 반포한 문자이다. " * 6


def _docx(document_xml: bytes) -> bytes:
    import io
    import zipfile

    ct = (b'<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
          b'<Override PartName="/word/document.xml" ContentType="application/vnd.openxmlformats-officedocument.'
          b'wordprocessingml.document.main+xml"/></Types>')
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("[Content_Types].xml", ct)
        z.writestr("word/document.xml", document_xml)
    return buf.getvalue()


def _raw_upload(filename: bytes, content: bytes) -> dict:
    body = (b'--B\r\nContent-Disposition: form-data; name="files"; filename="' + filename + b'"\r\n'
            b"Content-Type: text/plain\r\n\r\n" + content + b"\r\n--B--\r\n")
    return {"content": body, "headers": {"content-type": "multipart/form-data; boundary=B"}}


def hostile_requests(collection: str) -> list[tuple[str, str, str, dict]]:
    """(name, method, path, httpx keyword arguments) of requests a server must answer with a 4xx."""
    w = b'xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"'
    doc = lambda inner: b'<?xml version="1.0"?><w:document ' + w + b"><w:body>" + inner + b"</w:body></w:document>"  # noqa: E731
    laughs = (b'<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "lol">'
              + b"".join(b'<!ENTITY a%d "%s">' % (i, (b"&a%d;" % (i - 1) if i > 1 else b"&a;") * 10) for i in range(1, 10))
              + b"]><w:document " + w + b"><w:body><w:p><w:r><w:t>&a9;</w:t></w:r></w:p></w:body></w:document>")
    docx = {"truncated docx": _docx(doc(b"<w:p><w:r><w:t>x</w:t></w:r></w:p>"))[:-40],
            "docx text node > 10 MB": _docx(doc(b"<w:p><w:r><w:t>" + b"a" * (11 << 20) + b"</w:t></w:r></w:p>")),
            "docx billion laughs": _docx(laughs),
            "docx nesting 300 deep": _docx(doc(b"<w:p>" + b"<w:r>" * 300 + b"<w:t>x</w:t>" + b"</w:r>" * 300 + b"</w:p>")),
            "docx 150k empty paragraphs": _docx(doc(b"<w:p></w:p>" * 150_000)),
            "not a zip .docx": b"PK\x03\x04 nope", "binary .txt": b"\x00\x01\x02binary",
            "empty .txt": b"  \n", "pdf garbage": b"%PDF-1.4 garbage"}
    up = f"/collections/{collection}-hostile/documents"
    out = [(name, "POST", up, {"files": [("files", (f"x{'.docx' if 'docx' in name else '.pdf' if 'pdf' in name else '.txt'}",
                                                     data))]}) for name, data in docx.items()]
    out += [("NUL in file name", "POST", up, _raw_upload(b"a\x00.txt", "한글".encode())),
            ("file name of 270 bytes", "POST", up, _raw_upload(("가" * 90).encode() + b".txt", "한글".encode())),
            ("unsupported suffix", "POST", up, {"files": [("files", ("virus.exe", b"MZ"))]}),
            ("no files", "POST", up, {"files": [("other", ("a.txt", b"x"))]}),
            ("lone surrogate record", "POST", up, {"content": b'{"documents": [{"id": "s", "text": "\\ud800"}]}',
                                                   "headers": {"content-type": "application/json"}}),
            ("id with a slash", "POST", up, {"json": {"documents": [{"id": "a/b", "text": "한글"}]}}),
            ("empty text", "POST", up, {"json": {"documents": [{"text": "   "}]}}),
            ("JSON syntax error", "POST", "/ask", {"content": b'{"question": ', "headers": {"content-type": "application/json"}}),
            ("question is a number", "POST", "/ask", {"json": {"question": 5}}),
            ("empty question", "POST", "/ask", {"json": {"question": "  "}}),
            ("NUL in question", "POST", "/ask", {"json": {"question": "세종\x00대왕", "collection": collection}}),
            ("question of 100k characters", "POST", "/ask", {"json": {"question": "가" * 100_000}}),
            ("unknown collection", "POST", "/ask", {"json": {"question": "누구?", "collection": "nope-nope"}}),
            ("top_k_passages 0", "POST", "/ask", {"json": {"question": "누구?", "top_k_passages": 0}}),
            ("unknown mode", "POST", "/ask", {"json": {"question": "누구?", "mode": "magic"}}),
            ("filter value a dict", "POST", "/ask", {"json": {"question": "누구?", "collection": collection,
                                                               "filters": {"dept": {"$gt": 1}}}}),
            ("unknown field", "POST", "/ask", {"json": {"question": "누구?", "colection": "x"}}),
            ("reader max_seq_len 1024", "POST", "/models/reader",
             {"json": {"inputs": {"question": "누가?", "context": CONTEXT * 20}, "parameters": {"max_seq_len": 1024}}}),
            ("reader 300 inputs", "POST", "/models/reader",
             {"json": {"inputs": [{"question": "누가?", "context": "세종"}] * 300}}),
            ("reader context of 100k characters", "POST", "/models/reader",
             {"json": {"inputs": {"question": "누가?", "context": "가" * 100_000}}}),
            ("reader empty context", "POST", "/models/reader", {"json": {"inputs": {"question": "누가?", "context": ""}}}),
            ("reader top_k 0", "POST", "/models/reader",
             {"json": {"inputs": {"question": "누가?", "context": "세종"}, "parameters": {"top_k": 0}}}),
            ("document path traversal", "GET", f"/collections/{collection}/documents/..%2F..%2Fetc", {}),
            ("limit -1", "GET", f"/collections/{collection}/documents", {"params": {"limit": -1}}),
            ("delete unknown document", "DELETE", f"/collections/{collection}/documents/nope", {}),
            ("body over the limit", "POST", "/ask", {"content": b"{" + b" " * (40 << 20) + b"}",
                                                     "headers": {"content-type": "application/json"}})]
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(home: Path, collection: str, extra: list[str]) -> tuple[subprocess.Popen, str]:
    env = {**os.environ, "KOQA_HOME": str(home)}
    koqa = [sys.executable, "-m", "koqa"]
    subprocess.run([*koqa, "ingest", str(ROOT / "samples"), "--collection", collection], env=env, check=True,
                   capture_output=True)
    port = free_port()
    proc = subprocess.Popen([*koqa, "serve", "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning", *extra],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"koqa serve exited: {proc.stderr.read().decode()[-2000:]}")
        try:
            if httpx.get(url + "/health", timeout=2).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    proc.kill()
    raise SystemExit("koqa serve did not become healthy in 300 s")


def rss_mib(pid: int | None) -> float | None:
    if pid is None:
        return None
    with open(f"/proc/{pid}/status") as f:
        return round(next(int(line.split()[1]) for line in f if line.startswith("VmRSS")) / 1024, 1)


def run_hostile(url: str, collection: str, pid: int | None) -> dict:
    rows = []
    with httpx.Client(base_url=url, timeout=300) as client:
        for name, method, path, kwargs in hostile_requests(collection):
            try:
                status = client.request(method, path, **kwargs).status_code
            except httpx.HTTPError as exc:
                status = f"no answer ({type(exc).__name__})"
            rows.append({"request": name, "status": status, "rss_mib": rss_mib(pid)})
    classes = Counter(f"{s // 100}xx" if isinstance(s, int) else "none" for s in (r["status"] for r in rows))
    return {"tried": len(rows), "by_class": dict(classes), "rows": rows}


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    values = sorted(values)
    return round(values[min(len(values) - 1, int(q * len(values)))], 3)


async def _client(client: httpx.AsyncClient, path: str, payloads: list[dict], stop: float, seen: list) -> None:
    i = 0
    while time.monotonic() < stop:
        t0 = time.monotonic()
        try:
            status = (await client.post(path, json=payloads[i % len(payloads)])).status_code
        except httpx.HTTPError as exc:
            status = type(exc).__name__
        seen.append((status, time.monotonic() - t0))
        i += 1


async def run_load(url: str, path: str, payloads: list[dict], clients: int, seconds: float) -> dict:
    seen: list[tuple[int | str, float]] = []
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, timeout=300, limits=limits) as client:
        t0 = time.monotonic()
        await asyncio.gather(*(_client(client, path, payloads, t0 + seconds, seen) for _ in range(clients)))
        wall = time.monotonic() - t0
    ok = [dt for s, dt in seen if s == 200]
    busy = [dt for s, dt in seen if s == 503]
    return {"endpoint": path, "clients": clients, "seconds": round(wall, 1), "requests": len(seen),
            "ok_per_s": round(len(ok) / wall, 2), "statuses": dict(Counter(str(s) for s, _ in seen)),
            "p50_ok_s": _percentile(ok, 0.5), "p95_ok_s": _percentile(ok, 0.95),
            "p50_503_s": _percentile(busy, 0.5), "p95_503_s": _percentile(busy, 0.95)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", help="an already running server (default: start one on samples/)")
    ap.add_argument("--collection", default="bench-load")
    ap.add_argument("--clients", type=int, default=64)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--serve-arg", action="append", default=[], help="extra `koqa serve` argument (repeatable)")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "load.json"))
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="koqa-load-") as home:
        proc, url = (None, args.url) if args.url else start_server(Path(home), args.collection, args.serve_arg)
        pid = proc.pid if proc else None
        try:
            result = {"url": url, "cpu": cpu(), "rss_mib": {"start": rss_mib(pid)}}
            result["hostile"] = run_hostile(url, args.collection, pid)
            result["rss_mib"]["after_hostile"] = rss_mib(pid)
            asks = [{"question": q, "collection": args.collection} for q in QUESTIONS]
            reads = [{"inputs": {"question": q, "context": CONTEXT}} for q in QUESTIONS]
            result["load"] = []
            for path, payloads in (("/ask", asks), ("/models/reader", reads)):
                result["load"].append(asyncio.run(run_load(url, path, payloads, args.clients, args.seconds)))
                result["rss_mib"][f"after {path}"] = rss_mib(pid)
        finally:
            if proc:
                proc.terminate()
                proc.wait(30)
    report(result)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, ensure_ascii=False, indent=1))
    print(f"wrote {args.out}")


def report(result: dict) -> None:
    h = result["hostile"]
    print(f"CPU: {result['cpu']['model']} ({', '.join(result['cpu']['flags'])}; {result['cpu']['cpus']} cores)")
    print(f"hostile inputs: {h['tried']} tried, by status class {h['by_class']}")
    for row in h["rows"]:
        if not (isinstance(row["status"], int) and 400 <= row["status"] < 500):
            print(f"  not a 4xx: {row['request']} -> {row['status']}")
    print(f"{'endpoint':16} {'clients':>7} {'req':>6} {'ok/s':>7} {'p50 ok':>7} {'p95 ok':>7} {'p50 503':>8}  statuses")
    for r in result["load"]:
        print(f"{r['endpoint']:16} {r['clients']:>7} {r['requests']:>6} {r['ok_per_s']:>7} {r['p50_ok_s']!s:>7} "
              f"{r['p95_ok_s']!s:>7} {r['p50_503_s']!s:>8}  {r['statuses']}")
    print("server RSS (MiB):", result["rss_mib"])


if __name__ == "__main__":
    main()
