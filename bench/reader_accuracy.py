"""Reader accuracy (official KorQuAD 1.0 EM/F1) on every evaluation set given, with and without particle trimming.

    python bench/reader_accuracy.py                       # reader-small on the default sets
    python bench/reader_accuracy.py --reader koqa:reader-small --reader koqa:reader-fast
    python bench/reader_accuracy.py --data korquad-eval:FILE:300 --data tydi-dev:FILE --data my_squad.json

``--data`` takes the data specs of ``koqa.training.korquad.read_train_spec``: ``korquad-eval:FILE``
(the eval-split, last 40 articles of KorQuAD 1.0 dev; the first 100 are training data),
``tydi-dev:FILE`` (the by-passage TyDi GoldP dev split), or a plain SQuAD-layout file (all its
questions); ``:N`` at the end samples N questions (seeded). Without ``--data``: the eval-split and,
when ../shared has it, the TyDi dev split. Each reader reads each set once; particle trimming is
applied to that pass afterwards, so both columns come from the same predictions.

Prints one table and writes JSON (``--out``, default bench/results/reader_accuracy.json).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from koqa.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
SPLITS = ("korquad-train", "korquad-eval", "korquad-train-fit", "korquad-train-holdout", "tydi-train", "tydi-dev")


def default_specs(shared: Path) -> list[str]:
    """The eval-split, plus the TyDi dev split when its source file is there."""
    specs = [f"korquad-eval:{shared / 'data' / 'korquad' / 'KorQuAD_v1.0_dev.json.gz'}"]
    tydi = shared / "data" / "tydiqa_goldp_ko" / "tydiqa_goldp_ko_train.json"
    return specs + ([f"tydi-dev:{tydi}"] if tydi.is_file() else [])


def spec_file(spec: str) -> Path:
    """The file a data spec reads (its split prefix and ``:N`` sample size taken off)."""
    head, _, tail = spec.rpartition(":")
    body = head if head and tail.isdigit() else spec
    split, _, rest = body.partition(":")
    return Path(rest if split in SPLITS else body)


def set_name(spec: str) -> str:
    """A short label for the table: the split name, or the file name of a plain file (with ``:N``)."""
    head, _, tail = spec.rpartition(":")
    sample = f":{tail}" if head and tail.isdigit() else ""
    split = spec.partition(":")[0]
    return (split if split in SPLITS else spec_file(spec).name) + sample


def score_set(reader, examples, trimmer) -> dict:
    """EM/F1 of one prediction pass, as read and with trailing particles trimmed; seconds of the pass."""
    from koqa.training.evaluation import predict_spans
    from koqa.training.korquad import evaluate

    t0 = time.perf_counter()
    spans = predict_spans(reader, examples, progress=False)
    seconds = round(time.perf_counter() - t0, 1)
    # trimming only shortens the top span, as the reader's own trimming does, so one pass serves both columns
    contexts = {e.id: e.context for e in examples}
    plain = {k: s.text if s else "" for k, s in spans.items()}
    trimmed = {k: contexts[k][s.start : trimmer.span_end(contexts[k], s.start, s.end)] if s else ""
               for k, s in spans.items()}
    golds = {e.id: e.answer_texts for e in examples}
    with_trim, without = evaluate(golds, trimmed), evaluate(golds, plain)
    return {"questions": len(examples), "exact_match": round(with_trim["exact_match"], 2),
            "f1": round(with_trim["f1"], 2), "exact_match_no_trim": round(without["exact_match"], 2),
            "f1_no_trim": round(without["f1"], 2), "seconds": seconds}


def print_table(rows: list[dict]) -> None:
    print(f"{'reader':<28} {'set':<24} {'n':>5} {'EM':>6} {'F1':>6} {'EM no-trim':>10} {'F1 no-trim':>10} {'seconds':>8}")
    for r in rows:
        print(f"{r['reader'][-28:]:<28} {r['set'][-24:]:<24} {r['questions']:>5} {r['exact_match']:6.2f} "
              f"{r['f1']:6.2f} {r['exact_match_no_trim']:10.2f} {r['f1_no_trim']:10.2f} {r['seconds']:>8}")


def _parse(argv, shared: Path) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reader", action="append", help="name or folder; repeat to compare (default koqa:reader-small)")
    ap.add_argument("--data", action="append", metavar="SPEC", help="an evaluation set; repeat for several")
    ap.add_argument("--limit", type=int, default=None, help="a seeded sample of N questions of every set")
    ap.add_argument("--backend", default="torch-fp32", help="torch-fp32 (default) keeps scores comparable with the cards")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "reader_accuracy.json"))
    args = ap.parse_args(argv)
    args.reader = args.reader or ["koqa:reader-small"]
    args.data = args.data or default_specs(shared)
    if args.limit is not None and args.limit < 1:
        ap.error(f"--limit must be at least 1, got {args.limit}")
    for spec in args.data:
        if not spec_file(spec).is_file():
            ap.error(f"--data {spec!r}: {spec_file(spec)} is not a readable file")
    return args


def main(argv: list[str] | None = None) -> dict:
    """Score every ``--reader`` on every ``--data`` set; returns the JSON written to ``--out``."""
    settings = Settings.from_env()
    args = _parse(argv, settings.shared)

    from koqa.reader import QAReader
    from koqa.text.particles import ParticleTrimmer
    from koqa.training.korquad import read_train_spec

    sets = []
    for spec in args.data:
        examples, dropped = read_train_spec(spec + (f":{args.limit}" if args.limit else ""))
        sets.append((spec, examples, dropped))
    trimmer = ParticleTrimmer.load()
    rows = []
    for name in args.reader:
        reader = QAReader.from_pretrained(name, backend=args.backend, settings=settings, trim_particles=False)
        for spec, examples, dropped in sets:
            rows.append({"reader": name, "set": set_name(spec), "spec": spec, "dropped_answers": dropped,
                         **score_set(reader, examples, trimmer)})
    print_table(rows)
    result = {"backend": args.backend, "limit": args.limit, "rows": rows}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, ensure_ascii=False, indent=2), encoding="utf-8")
    return result


if __name__ == "__main__":
    main()
