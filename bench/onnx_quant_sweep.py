"""Pick the reader's ONNX int8 settings by measurement: F1 and speed of each candidate.

    .venv/bin/python bench/onnx_quant_sweep.py --reader PATH [--limit 400] [--speed-limit 60]

Every candidate (:data:`VARIANTS`, a :class:`koqa.reader.onnx_backend.QuantSettings`)
quantizes the same cached fp32 export.  F1/EM (official KorQuAD metric) are taken on
the eval-split questions with koqa's reader; speed is real tokens/s of the bare
ONNX Runtime session over the first ``--speed-limit`` questions' windows, measured
round-robin (every repeat runs every candidate once, so load changes hit all alike),
best and median of ``--repeats``.  Prints a table and writes
``bench/results/onnx_quant_sweep-<time>.json``.  The default of ``QuantSettings``
should be the fastest candidate within 1 F1 of fp32.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from dataclasses import asdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from bench._speed_workers import model_with_head  # noqa: E402
from koqa.reader.onnx_backend import FFN_DOWN, FFN_UP, QuantSettings  # noqa: E402
from koqa.settings import Settings  # noqa: E402

HEAD = "qa_outputs"
VARIANTS = {
    "fp32": None,
    "all-rr": QuantSettings(reduce_range=True),
    "all-nr": QuantSettings(reduce_range=False),
    "all-per-tensor-nr": QuantSettings(per_channel=False, reduce_range=False),
    "no-ffn-down-nr": QuantSettings(reduce_range=False, keep_fp32=(HEAD, FFN_DOWN)),
    "no-ffn-down-last4-nr": QuantSettings(reduce_range=False, keep_fp32=(HEAD, r"layer\.(8|9|10|11)/output/dense")),
    "no-ffn-down-first4-nr": QuantSettings(reduce_range=False, keep_fp32=(HEAD, r"layer\.[0-3]/output/dense")),
    "attention-only-rr": QuantSettings(reduce_range=True, keep_fp32=(HEAD, FFN_UP, FFN_DOWN)),
    "attention-only-nr": QuantSettings(reduce_range=False, keep_fp32=(HEAD, FFN_UP, FFN_DOWN)),
}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--reader", default="koqa:reader-small")
    p.add_argument("--data", default=None, help="examples spec (default: 400 eval-split KorQuAD questions)")
    p.add_argument("--limit", type=int, default=None)
    p.add_argument("--speed-limit", type=int, default=60, help="questions whose windows are timed")
    p.add_argument("--variants", default=",".join(VARIANTS))
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--out", default=str(HERE / "results"))
    return p.parse_args(argv)


def build_variants(fp32: Path, names: list[str], cache: Path) -> dict[str, Path]:
    """name → .onnx path; quantized files are cached by (fp32 export, settings)."""
    from koqa.reader.onnx_backend import quantize

    paths = {}
    for name in names:
        quant = VARIANTS[name]
        if quant is None:
            paths[name] = fp32
            continue
        key = hashlib.sha256(f"{fp32.resolve()}:{fp32.stat().st_mtime_ns}:{sorted(asdict(quant).items())}".encode())
        out = cache / f"{name}-{key.hexdigest()[:12]}.onnx"
        if not out.exists():
            cache.mkdir(parents=True, exist_ok=True)
            tmp = out.with_suffix(".tmp.onnx")
            quantize(fp32, tmp, quant)
            tmp.rename(out)
        paths[name] = out
    return paths


def accuracy(tokenizer, session, examples) -> dict:
    from koqa.reader import QAReader
    from koqa.training.korquad import evaluate
    from koqa.reader.onnx_backend import OnnxRunner

    spans = QAReader(tokenizer, OnnxRunner(session)).read_batch([e.question for e in examples],
                                                                 [[e.context] for e in examples])
    return evaluate({e.id: e.answer_texts for e in examples}, {e.id: s[0].text if s else "" for e, s in zip(examples, spans)})


def speed(tokenizer, sessions: dict, examples, repeats: int) -> tuple[dict[str, list[float]], int]:
    """(seconds per pass per session, real tokens) over the windows of ``examples``, round-robin."""
    from koqa.reader.onnx_backend import OnnxRunner
    from koqa.reader.windows import batches_by_length, make_windows, pad_batch

    windows = make_windows(tokenizer, [e.question for e in examples], [e.context for e in examples])
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    batches = [pad_batch([windows[i] for i in idx], pad) for idx in batches_by_length(windows, 16)]
    runners = {k: OnnxRunner(s) for k, s in sessions.items()}
    times: dict[str, list[float]] = {k: [] for k in runners}
    for rep in range(repeats):
        for name in (list(runners) if rep % 2 == 0 else list(runners)[::-1]):
            runners[name](batches[0])  # wake this session's threads
            t0 = time.perf_counter()
            for b in batches:
                runners[name](b)
            times[name].append(time.perf_counter() - t0)
        print(f"speed round {rep + 1}/{repeats} done (load {os.getloadavg()[0]:.1f})", file=sys.stderr, flush=True)
    return times, sum(len(w) for w in windows)


def main(argv=None) -> None:
    import statistics

    from koqa.training.korquad import read_train_spec
    from koqa.reader.loading import load_tokenizer
    from koqa.reader.onnx_backend import ensure_onnx, make_session, model_fingerprint

    args = parse_args(argv)
    settings = Settings.from_env()
    shared = settings.shared
    examples, _ = read_train_spec(args.data or f"korquad-eval:{shared}/data/korquad/KorQuAD_v1.0_dev.json.gz:400")
    examples = examples[: args.limit] if args.limit else examples
    model = Path(model_with_head(args.reader, HERE / "results" / "models", settings))
    tokenizer = load_tokenizer(str(model))
    names = args.variants.split(",")
    paths = build_variants(ensure_onnx(model, settings=settings), names, HERE / "results" / "onnx-quant" / model_fingerprint(model))
    sessions = {k: make_session(p) for k, p in paths.items()}
    rows = {}
    for name, session in sessions.items():
        rows[name] = {**accuracy(tokenizer, session, examples), "bytes": paths[name].stat().st_size,
                      "settings": asdict(VARIANTS[name]) if VARIANTS[name] else None}
        print(f"{name}: F1 {rows[name]['f1']:.2f}", file=sys.stderr, flush=True)
    times, tokens = speed(tokenizer, sessions, examples[: args.speed_limit], args.repeats)
    ref = rows.get("fp32", {}).get("f1")
    print(f"\n{len(examples)} questions for F1, {args.speed_limit} for speed ({tokens} tokens)")
    print(f"{'variant':22s} {'EM':>6s} {'F1':>6s} {'dF1':>6s} {'best tok/s':>10s} {'median':>7s} {'MB':>5s}")
    for name, r in rows.items():
        r.update(best_tokens_per_s=tokens / min(times[name]), median_tokens_per_s=tokens / statistics.median(times[name]),
                 seconds=times[name])
        df1 = f"{r['f1'] - ref:+.2f}" if ref is not None else ""
        print(f"{name:22s} {r['exact_match']:6.2f} {r['f1']:6.2f} {df1:>6s} {r['best_tokens_per_s']:10.0f} "
              f"{r['median_tokens_per_s']:7.0f} {r['bytes'] / 1e6:5.0f}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"onnx_quant_sweep-{time.strftime('%Y%m%d-%H%M%S')}.json"
    meta = {"command": " ".join(sys.argv), "model": str(model), "questions": len(examples), "speed_questions": args.speed_limit,
            "tokens": tokens, "loadavg_at_end": os.getloadavg()}
    path.write_text(json.dumps({"meta": meta, "rows": rows}, indent=1), encoding="utf-8")
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
