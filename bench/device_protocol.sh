#!/usr/bin/env bash
# Issue #10's training protocol on a GPU lent by the device tool, in one call.
#   here:   .venv/bin/python bench/device_carry.py prepare        (fills .carry/, ~33 MiB)
#   device: run(command="bash bench/device_protocol.sh", carry=[".carry"], timeout_s=570)
#           a call stopped by its limit continues where it left off when called again while the
#           machine is warm (runs/protocol/ and /tmp/koqa-base stay there until it goes back)
#   here:   .venv/bin/python bench/device_carry.py merge --shards FILES_AT --name small --out runs/gpu-small
#           (and --name fast), then bench/reader_accuracy.py --reader runs/gpu-small, koqa models make-delta
# What comes back ($OUT): protocol.json and protocol.log, small-NN / fast-NN fp16 shards (at most 8 files).
set -uo pipefail
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
OUT=${OUT:-bench/results/device}
PY=${PYTHON:-python3}
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.used,memory.total --format=csv,noheader || true
[ -f /tmp/koqa-base/model.safetensors ] || $PY bench/device_carry.py rebuild --out /tmp/koqa-base || exit 1
$PY bench/train_protocol.py --base /tmp/koqa-base --data .carry --work runs/protocol --out "$OUT" \
  2>&1 | tee -a "$OUT/protocol.log"
status=$?
for pair in small:b-final fast:fast; do
  run=runs/protocol/${pair#*:}
  [ -f "$run/train_summary.json" ] && $PY bench/device_carry.py export --model "$run" --name "${pair%%:*}" --out "$OUT"
done
exit $status
