"""Measurement workers of bench/reader_speed.py (its report: bench/_speed_report.py).

Each worker runs in its own process: ``python _speed_workers.py {ceiling|koqa} JOB.json RESULT.json``.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

if __name__ == "__main__":  # a worker process: the koqa of this checkout, not whichever is installed
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def torch_dtype(backend: str) -> str:
    """The weight dtype of a torch backend (the backend is the one precision knob)."""
    return "bfloat16" if backend == "torch-bf16" else "float32"


# ----------------------------------------------------------------------------- model


def has_qa_head(folder: Path) -> bool:
    """Whether the checkpoint in ``folder`` stores trained ``qa_outputs`` weights."""
    from safetensors import safe_open

    files = sorted(Path(folder).glob("*.safetensors"))
    if not files:
        return True  # .bin checkpoints: assume a QA checkpoint
    for f in files:
        with safe_open(str(f), "np") as st:
            if any("qa_outputs" in k for k in st.keys()):
                return True
    return False


def model_with_head(name: str, cache: Path, settings) -> str:
    """``name`` resolved to a folder; a bare encoder gets one seeded random QA head (cached)."""
    from koqa.models.cache import ensure_built
    from koqa.reader.loading import resolve
    from koqa.reader.onnx_backend import model_fingerprint

    path = Path(resolve(name, settings))
    if has_qa_head(path):
        return str(path)

    def build(tmp: Path) -> None:
        import torch

        from koqa.reader.loading import load_qa_model, load_tokenizer

        torch.manual_seed(0)
        load_qa_model(str(path), "float32", "cpu").save_pretrained(tmp)
        load_tokenizer(str(path)).save_pretrained(tmp)

    folder = ensure_built(cache, f"{path.name}-qa-seed0", model_fingerprint(path), build, {"source": str(path)})
    print(f"{path} has no QA head: using {folder} (seeded random head)", file=sys.stderr)
    return str(folder)


# ----------------------------------------------------------------------------- workers


def _sync(torch, device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _bare_pass(torch, model, batches, dev: str) -> float:
    """Seconds for one bare forward over pre-built batches."""
    with torch.inference_mode():
        _sync(torch, dev)
        t0 = time.perf_counter()
        for b in batches:
            model(**b)
        _sync(torch, dev)
    return time.perf_counter() - t0


def _device_batches(torch, windows, batch_size: int, pad: int, dev: str) -> list[dict]:
    from koqa.reader.windows import batches_by_length, pad_batch

    return [{k: torch.from_numpy(v).to(dev) for k, v in pad_batch([windows[i] for i in idx], pad).items()}
            for idx in batches_by_length(windows, batch_size)]


def ceiling(job: dict) -> dict:
    """Bare forward over koqa's exact windows, sorted by length, padded per batch, inputs pre-built.

    Batch sizes are timed round-robin, in ABBA order (each repeat reverses the
    order), so a load change during the run hits every size alike.
    """
    import torch

    from koqa.reader.loading import load_qa_model, load_tokenizer
    from koqa.reader.windows import make_windows

    dev, sizes = job["device"], job["batch_sizes"]
    tok = load_tokenizer(job["model"])
    model = load_qa_model(job["model"], job["dtype"], dev)
    windows = make_windows(tok, job["questions"], job["contexts"], max_seq_len=job["max_seq_len"], doc_stride=job["doc_stride"])
    pad = tok.pad_token_id if tok.pad_token_id is not None else 0
    batches = {bs: _device_batches(torch, windows, bs, pad, dev) for bs in sizes}
    with torch.inference_mode():
        model(**batches[sizes[0]][0])  # warm-up on the longest batch
    times: dict[int, list[float]] = {bs: [] for bs in sizes}
    for rep in range(job["repeats"]):
        for bs in sizes if rep % 2 == 0 else sizes[::-1]:
            times[bs].append(_bare_pass(torch, model, batches[bs], dev))
            print(f"ceiling batch {bs}: {times[bs][-1]:.2f}s", file=sys.stderr, flush=True)
    runs = {str(bs): {"seconds": times[bs], "padded_tokens": int(sum(b["input_ids"].numel() for b in batches[bs]))}
            for bs in sizes}
    return {"windows": len(windows), "tokens": int(sum(len(w) for w in windows)), "runs": runs,
            "threads": torch.get_num_threads()}


class _TimedRunner:
    """Wraps a runner to add up the seconds spent inside it (forward + transfers)."""

    def __init__(self, runner):
        self.runner, self.seconds = runner, 0.0

    def __call__(self, batch):
        t0 = time.perf_counter()
        try:
            return self.runner(batch)
        finally:
            self.seconds += time.perf_counter() - t0


def _load_reader(job: dict):
    from koqa.reader import QAReader, ReaderConfig
    from koqa.reader.qa import trimmer_for
    from koqa.settings import Settings

    settings = Settings.from_env()  # a worker process is an edge: where the ONNX exports are cached

    extra = {"batch_size": job["batch_size"]} if job.get("batch_size") else {}
    opts = dict(max_seq_len=job["max_seq_len"], doc_stride=job["doc_stride"], trim_particles=job.get("trim_particles", True),
                **extra)
    if job.get("threads") and job["backend"].startswith("onnx"):
        from koqa.reader.loading import load_tokenizer
        from koqa.reader.onnx_backend import OnnxRunner

        runner = OnnxRunner.load(Path(job["model"]), quantized=job["backend"] == "onnx-int8", threads=job["threads"],
                                 settings=settings)
        config = ReaderConfig(**opts)
        return QAReader(load_tokenizer(job["model"]), runner, config, name=job["model"], trimmer=trimmer_for(config))
    return QAReader.from_pretrained(job["model"], device=job["device"], backend=job["backend"], settings=settings, **opts)


def _paired_ceiling(reader, job: dict):
    """A bare-forward pass over the reader's own windows and batches, with the reader's model."""
    import torch

    from koqa.reader.windows import make_windows

    windows = make_windows(reader.tokenizer, job["questions"], job["contexts"], max_seq_len=job["max_seq_len"],
                           doc_stride=job["doc_stride"])
    batches = _device_batches(torch, windows, reader.config.batch_size, reader.pad_id, job["device"])
    model = reader.runner.model
    return lambda: _bare_pass(torch, model, batches, job["device"])


def koqa(job: dict) -> dict:
    """koqa's reader end to end (read_batch over all questions), one backend.

    With a torch backend, each timed pass is paired with a bare-forward pass of the
    same model over the same batches, interleaved in ABBA order, so the fraction of
    the ceiling is measured under the same machine load.
    """
    from koqa.reader.windows import make_windows

    if job["device"] != "cpu" and not job["backend"].startswith("torch"):
        return {"error": f"backend {job['backend']} runs on CPU only"}
    t0 = time.perf_counter()
    reader = _load_reader(job)
    load = time.perf_counter() - t0
    paired = _paired_ceiling(reader, job) if job["backend"].startswith("torch") else None
    reader.runner = timed = _TimedRunner(reader.runner)
    qs, cs = job["questions"], [[c] for c in job["contexts"]]
    reader.read_batch(qs[:2], cs[:2])  # warm-up
    times, forward, bare = [], [], []
    for rep in range(job["repeats"]):
        if paired and rep % 2 == 0:  # ABBA: bare, reader, reader, bare, ... cancels a linear load drift
            bare.append(paired())
        timed.seconds = 0.0
        t0 = time.perf_counter()
        spans = reader.read_batch(qs, cs)
        times.append(time.perf_counter() - t0)
        forward.append(timed.seconds)
        if paired and rep % 2 == 1:
            bare.append(paired())
    t0 = time.perf_counter()
    windows = make_windows(reader.tokenizer, job["questions"], job["contexts"], max_seq_len=job["max_seq_len"],
                           doc_stride=job["doc_stride"])
    tokenize = time.perf_counter() - t0
    print(f"koqa {job['backend']}: best {min(times):.2f}s", file=sys.stderr, flush=True)
    return {"seconds": times, "forward_seconds": forward, "tokenize_seconds": tokenize, "load_seconds": load,
            "paired_ceiling_seconds": bare, "windows": len(windows), "tokens": int(sum(len(w) for w in windows)),
            "batch_size": reader.config.batch_size, "answers": [s[0].text if s else "" for s in spans]}


def _main(kind: str, job_file: str, out_file: str) -> None:
    import warnings

    warnings.filterwarnings("ignore")
    from transformers.utils import logging

    logging.set_verbosity_error()
    job = json.loads(Path(job_file).read_text(encoding="utf-8"))
    if job.get("threads"):
        import torch

        torch.set_num_threads(job["threads"])
    load0 = os.getloadavg()[0]
    result = {"ceiling": ceiling, "koqa": koqa}[kind](job)
    result["loadavg_1min"] = [load0, os.getloadavg()[0]]
    Path(out_file).write_text(json.dumps(result, ensure_ascii=False), encoding="utf-8")


if __name__ == "__main__":
    _main(*sys.argv[1:4])
