#!/usr/bin/env bash
# One short GPU check (about 10 minutes on one GPU), for a machine with an NVIDIA GPU and the repo's .venv
# plus a CUDA build of torch and onnxruntime-gpu. Prints figures; writes everything under $OUT (default
# runs/gpu_check). Not run by the test suite, which never needs a GPU.
#
#   OUT=/tmp/gpu bash benchmarks/gpu_check.sh
#
# 1. CUDA training of the quick preset (DASS search, then the derived network's fine-tuning), timed.
# 2. With 2+ GPUs: the same search on 1 GPU and on 2 processes (torchrun), time and genotype compared.
# 3. cuda-gpu latency of the DASS export: TorchScript on torch CUDA and ONNX on ONNX Runtime's CUDA provider,
#    host to host (copies inside) and device compute.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
OUT=${OUT:-runs/gpu_check}
mkdir -p "$OUT"
export PYTHONPATH=$PWD

"$PY" - <<'EOF'
import torch, onnxruntime as ort
print("torch", torch.__version__, "CUDA", torch.version.cuda, "GPUs", torch.cuda.device_count(),
      [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())])
print("onnxruntime", ort.__version__, ort.get_available_providers())
if not torch.cuda.is_available():
    raise SystemExit("error: torch sees no CUDA device")
EOF

stamp() { date +%s.%N; }
took() { "$PY" -c "print(f'{$2 - $1:.1f} s')"; }

echo "== 1. quick preset on one GPU"
t0=$(stamp)
"$PY" -m dass_edge search --preset quick --device cuda --out "$OUT/search1" --fresh --json > "$OUT/search1.json"
t1=$(stamp)
"$PY" -m dass_edge train --arch "dass:$OUT/search1/search.pt" --preset quick --device cuda --out "$OUT/train" \
  --json > "$OUT/train.json"
t2=$(stamp)
echo "search: $(took "$t0" "$t1"), fine-tune: $(took "$t1" "$t2")"
"$PY" - "$OUT" <<'EOF'
import json, sys
for name in ("search1", "train"):
    r = json.load(open(f"{sys.argv[1]}/{name}.json"))
    print(name, r["arch"], "test accuracy", r["test_accuracy"], "non-zero", r["nonzero_params"], "/", r["params"])
EOF

echo "== 1b. the same fine-tune with --amp (fp16)"
t0=$(stamp)
"$PY" -m dass_edge train --arch "dass:$OUT/search1/search.pt" --preset quick --device cuda --amp \
  --out "$OUT/train-amp" --json > "$OUT/train-amp.json"
t1=$(stamp)
echo "fine-tune --amp: $(took "$t0" "$t1"), test accuracy $("$PY" -c "import json;print(json.load(open('$OUT/train-amp.json'))['test_accuracy'])")"

GPUS=$("$PY" -c "import torch; print(torch.cuda.device_count())")
if [ "$GPUS" -ge 2 ]; then
  echo "== 2. search on 2 GPUs (torchrun, NCCL) vs 1"
  t0=$(stamp)
  "$PY" -m torch.distributed.run --standalone --nproc_per_node 2 -m dass_edge search --preset quick \
    --device cuda --out "$OUT/search2" --fresh --json > "$OUT/search2.json"
  t1=$(stamp)
  echo "2 processes: $(took "$t0" "$t1")"
  "$PY" - "$OUT" <<'EOF'
import json, sys
one, two = (json.load(open(f"{sys.argv[1]}/{n}.json")) for n in ("search1", "search2"))
print("same genotype:", one["genotype"] == two["genotype"], "accuracy 1 GPU", one["test_accuracy"],
      "2 GPUs", two["test_accuracy"])
EOF
else
  echo "== 2. skipped: one GPU (2 processes on one GPU would share it; NCCL refuses two ranks per device)"
fi

echo "== 3. cuda-gpu latency of the DASS export (batch 1)"
"$PY" -m dass_edge export "$OUT/train/"*.pt --target cuda-gpu --out "$OUT/exported" --allow-dead --json \
  > "$OUT/export.json"
MODEL_DIR=$(dirname "$(ls "$OUT"/exported/*/cuda-gpu/model.pt)")
for file in model.pt model.onnx; do
  "$PY" -m dass_edge bench "$MODEL_DIR/$file" --device cuda-gpu --runs 200 --min-seconds 2 --rounds 3 \
    --allow-dead --json > "$OUT/bench-$file.json"
done
"$PY" - "$OUT" <<'EOF'
import json, sys
for file in ("model.pt", "model.onnx"):
    r = json.load(open(f"{sys.argv[1]}/bench-{file}.json"))
    c = r.get("device_compute", {})
    print(f"{file}: {r['runtime']} {r['runtime_version']} on {r.get('providers') or r['runtime_device']}: "
          f"host-to-host median {r['median_ms']:.4f} ms (p90 {r['p90_ms']:.4f}), "
          f"device compute median {c.get('median_ms', float('nan')):.4f} ms")
EOF
echo "done: $OUT"
