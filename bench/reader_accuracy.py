"""Reader accuracy on KorQuAD-dev eval-split (last 40 articles), with and without particle trimming.

    python bench/reader_accuracy.py                       # the default reader
    python bench/reader_accuracy.py --reader runs/en-ko --limit 300

Prints a table and writes bench/results/reader_accuracy.json.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from koqa.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
SHARED = Settings.from_env().shared


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reader", default="koqa:reader-small")
    ap.add_argument("--data", default=str(SHARED / "data" / "korquad" / "KorQuAD_v1.0_dev.json.gz"))
    ap.add_argument("--limit", type=int, default=None, help="a seeded sample of N eval-split questions")
    ap.add_argument("--backend", default="torch-fp32")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "reader_accuracy.json"))
    args = ap.parse_args()

    from koqa.reader import QAReader
    from koqa.training.evaluation import predict_spans
    from koqa.training.korquad import evaluate, read_train_spec
    from koqa.text.particles import ParticleTrimmer

    examples, _ = read_train_spec(f"korquad-eval:{args.data}" + (f":{args.limit}" if args.limit else ""))
    reader = QAReader.from_pretrained(args.reader, backend=args.backend, settings=Settings.from_env(), trim_particles=False)
    t0 = time.perf_counter()
    spans = predict_spans(reader, examples)
    seconds = round(time.perf_counter() - t0, 1)
    # trimming only shortens the top span, as the reader's own trimming does, so one model pass serves both rows
    trimmer = ParticleTrimmer.load()
    contexts = {e.id: e.context for e in examples}
    plain = {k: s.text if s else "" for k, s in spans.items()}
    trimmed = {k: contexts[k][s.start : trimmer.span_end(contexts[k], s.start, s.end)] if s else ""
               for k, s in spans.items()}
    golds = {e.id: e.answer_texts for e in examples}
    rows = [{"reader": args.reader, "backend": args.backend, "trim_particles": trim, "seconds": seconds,
             **evaluate(golds, preds), "questions": len(examples)} for trim, preds in ((False, plain), (True, trimmed))]
    print(f"{'reader':<28} {'trim':<6} {'EM':>6} {'F1':>6} {'questions':>9} {'seconds':>8}")
    for r in rows:
        print(f"{r['reader'][-28:]:<28} {str(r['trim_particles']):<6} {r['exact_match']:6.2f} {r['f1']:6.2f} "
              f"{r['questions']:>9} {r['seconds']:>8}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"split": "korquad-dev eval-split (articles 101-140)", "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
