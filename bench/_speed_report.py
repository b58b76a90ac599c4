"""The report of bench/reader_speed.py: rows from the workers' raw timings, the printed table, machine facts."""

from __future__ import annotations

import os
import time


def _rates(seconds: float, questions: int, windows: int, tokens: int) -> dict:
    return {"seconds": round(seconds, 3), "questions_per_s": questions / seconds, "windows_per_s": windows / seconds,
            "tokens_per_s": tokens / seconds}


def _scores(examples, answers) -> dict:
    from koqa.training.korquad import evaluate

    return evaluate({e.id: e.answer_texts for e in examples}, {e.id: a for e, a in zip(examples, answers)})


def _paired(r: dict) -> float | None:
    """Bare-forward time / reader time, summed over the interleaved (ABBA) passes of one process."""
    return sum(r["paired_ceiling_seconds"]) / sum(r["seconds"]) if r.get("paired_ceiling_seconds") else None


def _fraction(row: dict, rows: list[dict], ceiling_best: float | None) -> float | None:
    """Reader tokens/s over the best ceiling's.

    With a paired measurement (torch) it is the paired fraction times the ceiling
    at the reader's batch size over the best ceiling (both ratios taken within one
    process, so machine load cancels); otherwise the plain ratio across processes.
    """
    if not ceiling_best:
        return None
    same = next((r for r in rows if r["name"].startswith("ceiling") and r["batch"] == row["batch"]), None)
    if row.get("paired_fraction_of_ceiling") and same:
        return row["paired_fraction_of_ceiling"] * same["tokens_per_s"] / ceiling_best
    return row["tokens_per_s"] / ceiling_best


def summarise(raw: dict, examples) -> dict:
    """Rows of the report: one per pipeline batch size, ceiling batch size and koqa backend."""
    n = len(examples)
    rows: list[dict] = []
    ceil = raw.get("ceiling", {})
    for bs, r in ceil.get("runs", {}).items():
        rows.append({"name": "ceiling (bare forward)", "batch": int(bs),
                     **_rates(min(r["seconds"]), n, ceil["windows"], ceil["tokens"]),
                     "padding_fraction": 1 - ceil["tokens"] / r["padded_tokens"]})
    pipe = raw.get("pipeline") or {}
    for bs, r in pipe.get("runs", {}).items():
        rows.append({"name": f"pipeline (transformers {pipe['transformers']})", "batch": int(bs),
                     **_rates(min(r["seconds"]), n, pipe["windows"], pipe["tokens"]), **_scores(examples, r["answers"])})
    for backend, r in raw.get("koqa", {}).items():
        if "seconds" not in r:
            rows.append({"name": f"koqa {backend}", "error": r.get("error")})
            continue
        best = min(range(len(r["seconds"])), key=r["seconds"].__getitem__)
        total, fwd = r["seconds"][best], r["forward_seconds"][best]
        rows.append({"name": f"koqa {backend}", "batch": r["batch_size"], **_rates(total, n, r["windows"], r["tokens"]),
                     **_scores(examples, r["answers"]), "forward_seconds": round(fwd, 3),
                     "tokenize_seconds": round(r["tokenize_seconds"], 3),
                     "decode_other_seconds": round(total - fwd - r["tokenize_seconds"], 3),
                     "paired_fraction_of_ceiling": _paired(r)})
    ceiling_best = max((r["tokens_per_s"] for r in rows if r["name"].startswith("ceiling")), default=None)
    pipe_best = max((r["questions_per_s"] for r in rows if r["name"].startswith("pipeline")), default=None)
    by_name = {r["name"]: r for r in rows}
    for r in rows:
        if r["name"].startswith("koqa") and "seconds" in r:
            # the ceiling is the full model's: a smaller reader only has its own paired fraction
            r["fraction_of_ceiling"] = r["paired_fraction_of_ceiling"] if "fast" in r["name"] else \
                _fraction(r, rows, ceiling_best)
            r["x_pipeline"] = r["questions_per_s"] / pipe_best if pipe_best else None
        ref = by_name.get(r["name"].replace("koqa fast ", "koqa ")) if r["name"].startswith("koqa fast ") else None
        if ref and "seconds" in r and "seconds" in ref:  # the smaller reader against the full one, same backend
            r["x_full_reader"] = r["questions_per_s"] / ref["questions_per_s"]
            r["f1_vs_full_reader"] = r["f1"] - ref["f1"]
        _against_fp32(r, by_name)
    return {"config": raw["config"], "rows": rows, "ceiling_best_tokens_per_s": ceiling_best,
            "pipeline_best_questions_per_s": pipe_best}


def _against_fp32(row: dict, by_name: dict) -> None:
    """Speed-up and F1 change of a koqa row against the same reader on torch-fp32: what ``auto`` weighs."""
    if not row["name"].startswith("koqa") or "seconds" not in row:
        return
    prefix = "koqa fast " if row["name"].startswith("koqa fast ") else "koqa "
    ref = by_name.get(prefix + "torch-fp32")
    if ref is None or ref is row or "seconds" not in ref:
        return
    row["x_fp32"] = row["questions_per_s"] / ref["questions_per_s"]
    row["f1_vs_fp32"] = row["f1"] - ref["f1"]


def print_table(report: dict) -> None:
    c = report["config"]
    print(f"\n{c['questions']} questions, {c['device']} (ceiling and pipeline in {c['dtype']}), "
          f"max_seq_len {c['max_seq_len']}, stride {c['doc_stride']}")
    head = f"{'run':34s} {'batch':>5s} {'sec':>7s} {'q/s':>6s} {'win/s':>6s} {'tok/s':>7s} {'%ceil':>6s} {'x pipe':>6s} {'EM':>6s} {'F1':>6s}"
    print(head + "\n" + "-" * len(head))
    for r in report["rows"]:
        if "error" in r:
            print(f"{r['name']:34s} {r['error']}")
            continue
        pct = f"{100 * r['fraction_of_ceiling']:.1f}" if r.get("fraction_of_ceiling") else ""
        xp = f"{r['x_pipeline']:.2f}" if r.get("x_pipeline") else ""
        em = f"{r['exact_match']:.2f}" if "exact_match" in r else ""
        f1 = f"{r['f1']:.2f}" if "f1" in r else ""
        print(f"{r['name']:34s} {r['batch']:5d} {r['seconds']:7.2f} {r['questions_per_s']:6.2f} {r['windows_per_s']:6.2f} "
              f"{r['tokens_per_s']:7.0f} {pct:>6s} {xp:>6s} {em:>6s} {f1:>6s}")
    for r in report["rows"]:
        if r["name"].startswith("koqa") and "forward_seconds" in r:
            paired = r.get("paired_fraction_of_ceiling")
            print(f"{r['name']}: forward {r['forward_seconds']:.2f}s, tokenize {r['tokenize_seconds']:.2f}s, "
                  f"decode+other {r['decode_other_seconds']:.2f}s"
                  + (f"; {100 * paired:.1f}% of a bare forward over the same batches, interleaved" if paired else ""))
        if "x_full_reader" in r:
            print(f"{r['name']}: {r['x_full_reader']:.2f}x the full reader's questions/s, F1 {r['f1_vs_full_reader']:+.2f}")
        if "x_fp32" in r:
            print(f"{r['name']}: {r['x_fp32']:.2f}x torch-fp32's questions/s, F1 {r['f1_vs_fp32']:+.2f} vs fp32")
    auto = report.get("meta", {}).get("auto")
    if auto:
        print(f"auto picks {auto['backend']} here: {auto['reason']}")


def machine_info(command: str, device: str = "cpu") -> dict:
    """Versions, the CPU's model name and flags, and what ``auto`` picks on this machine."""
    import numpy
    import onnxruntime
    import torch
    import transformers

    from koqa.reader.backend import CpuFeatures, resolve_backend

    cpu = CpuFeatures.detect()
    auto = resolve_backend("auto", device=device, cpu=cpu)
    return {"command": command, "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "cpu": cpu.model,
            "cpu_flags": list(cpu.relevant), "cpu_all_flags": sorted(cpu.flags), "cores": os.cpu_count(),
            "auto": {"backend": auto.backend, "reason": auto.reason},
            "loadavg_at_end": os.getloadavg(), "torch": torch.__version__, "transformers": transformers.__version__,
            "onnxruntime": onnxruntime.__version__, "numpy": numpy.__version__,
            "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}
