#!/usr/bin/env bash
# Issue #11's GPU checks in one call of the device tool: koqa's reader vs the transformers 5.2
# QA pipeline and the bare-forward ceiling (bf16), and `ask` over 20 recorded passages.
#   here:   .venv/bin/python bench/replay_ask.py dump --limit 200        (.carry/ask_hits.json.gz)
#           .venv/bin/python bench/device_carry.py prepare               (the base pack, after the dump)
#           echo /.whl/ >> .git/info/exclude   # then, for the pipeline peer (device README, "nvidia-h200"):
#           .venv/bin/python -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#             --platform manylinux_2_17_x86_64 -d .whl transformers==5.2.0 tokenizers==0.22.2 huggingface_hub==1.33.0
#   device: run(command="bash bench/device_speed.sh", timeout_s=480, carry=[".carry/e5-small-q4.used-rows.bin.xz",
#             ".carry/korquad_dev.json.gz", ".carry/ask_hits.json.gz", ".whl"])
# What comes back ($OUT): reader_speed-cuda-*.json, ask-*.json, speed.log.
set -uo pipefail
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
OUT=${OUT:-bench/results/device}
PY=${PYTHON:-python3}
mkdir -p "$OUT"
exec > >(tee -a "$OUT/speed.log") 2>&1
nvidia-smi --query-gpu=name,memory.used,memory.total --format=csv,noheader || true
[ -f /tmp/koqa-base/model.safetensors ] || $PY bench/device_carry.py rebuild --out /tmp/koqa-base || exit 1
[ -d /tmp/koqa-readers/reader-fast ] || $PY bench/device_carry.py readers --base /tmp/koqa-base --out /tmp/koqa-readers || exit 1
# the pipeline peer: transformers 5.2.0 (the last with pipeline("question-answering")) over this machine's torch
$PY -m pip install -q --no-index --no-deps --no-compile --target /tmp/peer .whl/*.whl || exit 1
printf '#!/bin/sh\nPYTHONPATH=/tmp/peer exec %s "$@"\n' "$(command -v "$PY")" > /tmp/peer-python && chmod +x /tmp/peer-python
for r in reader-small reader-fast; do
  for depth in 0 5; do
    $PY bench/replay_ask.py run --reader /tmp/koqa-readers/$r --device cuda --backend torch-bf16 --read-first $depth \
      --out "$OUT/ask-$r-depth$depth.json"
  done
done
$PY bench/reader_speed.py --reader /tmp/koqa-readers/reader-small --fast-reader /tmp/koqa-readers/reader-fast \
  --device cuda --no-trim --data "korquad-eval:.carry/korquad_dev.json.gz:400" --peer-python /tmp/peer-python --out "$OUT"
