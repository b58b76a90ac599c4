"""Reader speed: koqa's reader backends side by side, vs the bare-forward ceiling and transformers' QA pipeline.

    .venv/bin/python bench/reader_speed.py [--reader NAME] [--backends torch-fp32,torch-bf16,onnx-int8] [--limit N]
    .venv/bin/python bench/reader_speed.py --device cuda --backends torch-fp32,torch-bf16

The proof of ``KOQA_READER_BACKEND=auto`` on a machine: the default runs fp32, bf16 and
onnx-int8 on 400 eval-split questions, prints each backend's speed-up and F1 against
torch-fp32 (``auto`` may only pick one within 0.3 F1) and records the CPU's model name and
flags and what ``auto`` picks there in the JSON.

On one model and one set of inputs (default: the 400 seeded eval-split KorQuAD
questions, max_seq_len 384, stride 128) it times

(a) ``transformers.pipeline("question-answering")`` at each ``--batch-sizes`` (that
    pipeline was removed in transformers 5.3, so it runs from transformers 5.2.0 in a
    virtual environment of its own, ``bench/.peer/.venv``, created on first use with the
    same torch: see :func:`ensure_peer_venv`);
(b) the ceiling: a bare ``model(**batch)`` over exactly the windows koqa builds,
    sorted by length and padded per batch, at each batch size (inputs pre-built);
(c) koqa's ``QAReader.read_batch`` end to end (tokenise, window, forward, decode)
    with each ``--backends`` entry, at the reader's configured batch size.

(a) and (b) run in the precision of the first torch backend listed.

Every measurement runs in a fresh subprocess (thread pools of torch and ONNX
Runtime would otherwise fight over the cores) and takes the best of ``--repeats``.
It prints questions/s, windows/s, real (non-padding) tokens/s, koqa's fraction of
the best ceiling in tokens/s, the speed-up over the pipeline's best questions/s and
EM/F1 with the official KorQuAD metric, and writes everything to
``bench/results/reader_speed-<device>-<time>.json``.

A bare encoder (no trained QA head, e.g. ../shared/models/me5-small-ko) is first
given one seeded random head, saved under ``bench/results/models/``, so that every
process reads with the same weights (speed does not depend on the head; F1 does).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # run as a script from a checkout

from bench import _speed_report as report_lib  # noqa: E402
from bench import _speed_workers as workers  # noqa: E402
from koqa.errors import KoqaError  # noqa: E402
from koqa.settings import READER_BACKENDS, Settings, reader_backend_name  # noqa: E402

DEFAULT_DATA = "korquad-eval:{shared}/data/korquad/KorQuAD_v1.0_dev.json.gz:400"
PEER_VENV = HERE / ".peer" / ".venv"
PEER_TRANSFORMERS = "transformers==5.2.0"


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--reader", default="koqa:reader-small", help="model name or folder (default: koqa:reader-small)")
    p.add_argument("--data", default=None, help="examples spec (default: 400 eval-split KorQuAD questions)")
    p.add_argument("--limit", type=int, default=None, help="only the first N questions")
    p.add_argument("--max-seq-len", type=int, default=384)
    p.add_argument("--stride", type=int, default=128)
    p.add_argument("--batch-sizes", default=None, help="comma list for pipeline and ceiling (default cpu 1,4,16,32; cuda 8,32,128)")
    p.add_argument("--reader-batch-size", type=int, default=None, help="koqa reader batch size (default: its config)")
    p.add_argument("--backends", default=None, help="comma list of " + ",".join(READER_BACKENDS) + " (default: "
                   "torch-fp32,torch-bf16,onnx-int8 on cpu, torch-fp32,torch-bf16 on cuda; auto: what auto picks here)")
    p.add_argument("--fast-reader", default=None,
                   help="also time this smaller reader (e.g. koqa:reader-fast) with each backend: speed-up and F1 vs --reader")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--threads", type=int, default=None, help="torch / ONNX Runtime threads (default: their own)")
    p.add_argument("--repeats", type=int, default=2, help="timed passes per measurement; the best counts")
    p.add_argument("--skip-pipeline", action="store_true", help="do not run the transformers pipeline peer")
    p.add_argument("--trim", action=argparse.BooleanOptionalAction, default=True,
                   help="koqa's Korean particle trimming (--no-trim where kiwipiepy is missing, e.g. a GPU machine)")
    p.add_argument("--peer-python", default=None, help="python of an existing env with transformers 5.2.0 (skips venv setup)")
    p.add_argument("--wheels", default=os.environ.get("PIP_FIND_LINKS"), help="folder with the local torch wheel for the peer venv")
    p.add_argument("--out", default=str(HERE / "results"))
    return p.parse_args(argv)


def ensure_peer_venv(wheels: str | None) -> Path:
    """``bench/.peer/.venv`` with transformers 5.2.0 and this interpreter's exact torch build.

    torch comes from the local wheel (never the default index, which would pull CUDA
    packages on Linux); ``--system-site-packages`` stays off so transformers 5.24 of
    the main environment cannot leak in.
    """
    import torch

    python = PEER_VENV / "bin" / "python"
    if python.exists() and _peer_ok(python, torch.__version__):
        return python
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(PEER_VENV)], check=True)
    wheel = _local_torch_wheel(wheels, torch.__version__)
    subprocess.run([str(python), "-m", "pip", "install", "-q", str(wheel), PEER_TRANSFORMERS], check=True)
    if not _peer_ok(python, torch.__version__):
        raise SystemExit(f"peer venv {PEER_VENV} does not import transformers 5.2.0 with torch {torch.__version__}")
    return python


def _peer_ok(python: Path, torch_version: str) -> bool:
    code = "import torch, transformers; print(torch.__version__, transformers.__version__)"
    out = subprocess.run([str(python), "-c", code], capture_output=True, text=True)
    return out.returncode == 0 and out.stdout.split() == [torch_version, PEER_TRANSFORMERS.split("==")[1]]


def _local_torch_wheel(wheels: str | None, version: str) -> Path:
    base = version.split("+")[0]
    for folder in (wheels or "").split():
        found = sorted(Path(folder.removeprefix("file://")).glob(f"torch-{base}*.whl"))
        if found:
            return found[0]
    raise SystemExit(f"no local torch-{base} wheel found in {wheels!r}; pass --wheels DIR or --peer-python PYTHON")


def run_subprocess(cmd: list[str], job: dict, label: str) -> dict:
    """Run one measurement in a fresh process: JOB json in, RESULT json out."""
    with tempfile.TemporaryDirectory(prefix="koqa-bench-") as tmp:
        job_file, out_file = Path(tmp) / "job.json", Path(tmp) / "result.json"
        job_file.write_text(json.dumps(job, ensure_ascii=False), encoding="utf-8")
        print(f"[{time.strftime('%H:%M:%S')}] {label} ...", file=sys.stderr, flush=True)
        proc = subprocess.run([*cmd, str(job_file), str(out_file)], env={**os.environ, "PYTHONWARNINGS": "ignore"})
        if proc.returncode != 0 or not out_file.exists():
            return {"error": f"{label} failed with exit code {proc.returncode}"}
        return json.loads(out_file.read_text(encoding="utf-8"))


def backends_to_run(spec: str | None, device: str) -> list[str]:
    """The concrete backends of ``--backends`` in order, without repeats ("auto" → its pick here).

    >>> backends_to_run("torch,torch-fp32,onnx-int8", "cpu")
    ['torch-fp32', 'onnx-int8']
    """
    from koqa.reader.backend import resolve_backend

    spec = spec or ("torch-fp32,torch-bf16,onnx-int8" if device == "cpu" else "torch-fp32,torch-bf16")
    out: list[str] = []
    for name in spec.split(","):
        try:
            backend = resolve_backend(name.strip(), device=device).backend if name.strip() == "auto" else \
                reader_backend_name(name.strip(), "--backends")
        except KoqaError as exc:
            raise SystemExit(str(exc)) from None
        if backend not in out:
            out.append(backend)
    return out


def collect(args, model: str, examples, fast: str | None = None) -> dict:
    """All measurements for one configuration, as raw results."""
    device = args.device
    sizes = [int(b) for b in (args.batch_sizes or ("1,4,16,32" if device == "cpu" else "8,32,128")).split(",")]
    backends = backends_to_run(args.backends, device)
    dtype = workers.torch_dtype(next((b for b in backends if b.startswith("torch")), "torch-fp32"))
    base = {"model": model, "questions": [e.question for e in examples], "contexts": [e.context for e in examples],
            "max_seq_len": args.max_seq_len, "doc_stride": args.stride, "device": device, "dtype": dtype,
            "repeats": args.repeats, "threads": args.threads, "trim_particles": args.trim}
    me = [sys.executable, str(Path(__file__).resolve().parent / "_speed_workers.py")]
    raw: dict = {"config": {**{k: v for k, v in base.items() if k not in ("questions", "contexts")},
                            "batch_sizes": sizes, "backends": backends, "questions": len(examples)}}
    raw["ceiling"] = run_subprocess([*me, "ceiling"], {**base, "batch_sizes": sizes}, "ceiling (bare forward)")
    raw["koqa"] = {}
    for b in backends:
        job = {**base, "backend": b, "batch_size": args.reader_batch_size}
        raw["koqa"][b] = run_subprocess([*me, "koqa"], job, f"koqa reader, {b}")
        if fast:
            raw["koqa"][f"fast {b}"] = run_subprocess([*me, "koqa"], {**job, "model": fast}, f"koqa fast reader, {b}")
    if not args.skip_pipeline:
        python = Path(args.peer_python) if args.peer_python else ensure_peer_venv(args.wheels)
        from koqa.reader.spans import MAX_ANSWER_LEN

        job = {**base, "batch_sizes": sizes, "max_answer_len": MAX_ANSWER_LEN, "max_question_len": 96}
        raw["pipeline"] = run_subprocess([str(python), str(HERE / "_hf_pipeline_peer.py")], job, "transformers pipeline")
    return raw


def _model_with_head(name: str, option: str) -> str:
    from koqa.errors import KoqaError

    try:
        return workers.model_with_head(name, HERE / "results" / "models", Settings.from_env())
    except KoqaError as exc:
        raise SystemExit(f"cannot use {option} {name!r}: {exc}") from None


def main(argv=None) -> None:
    args = parse_args(argv)
    from koqa.training.korquad import read_train_spec

    shared = Settings.from_env().shared
    examples, _ = read_train_spec(args.data or DEFAULT_DATA.format(shared=shared))
    examples = examples[: args.limit] if args.limit else examples
    model = _model_with_head(args.reader, "--reader")
    fast = _model_with_head(args.fast_reader, "--fast-reader") if args.fast_reader else None
    raw = collect(args, model, examples, fast)
    report = report_lib.summarise(raw, examples)
    report["meta"] = report_lib.machine_info(" ".join(sys.argv), args.device)
    report_lib.print_table(report)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"reader_speed-{args.device}-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps({**report, "raw": raw}, indent=1, ensure_ascii=False), encoding="utf-8")
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
