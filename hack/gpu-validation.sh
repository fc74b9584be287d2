#!/usr/bin/env bash
# GPU validation of the builder's pytorch path and of the accuracy gate (docs/gpu-validation.md).
#
#   make gpu-validation                      # = bash hack/gpu-validation.sh: run 2 (confirmatory), i.e.
#                                            #   --thresholds per-precision --seeds 5,6,7,8
#   bash hack/gpu-validation.sh --thresholds run1 --seeds 1,2,3,4   # run 1: one maxDrop 0.02, seeds 1-4
#   bash hack/gpu-validation.sh --pilot      # short training, one seed: a smoke test
#   bash hack/gpu-validation.sh --dry-run    # no GPU: data split, rendered plans, builder commands,
#                                            #   gate arithmetic, stand-in tensorrt flow (pynvml shim)
#
# Every run also takes a rendered tensorrt-backend fp8 TP1 plan through the builder with the
# stand-in TensorRT-LLM tools of hack/standins/bin and the real NVML preflight (no pynvml shim);
# --skip-standin-tensorrt leaves it out.
#
# Needs an NVIDIA GPU and a python3 with torch, transformers, tokenizers, safetensors, numpy, PyYAML,
# pytest and nvidia-ml-py (the lent H100/H200 image has them). What such a machine lacks — NVIDIA
# ModelOpt and its needs, pydantic, structlog — is installed from .whl/ (hack/fetch-gpu-wheels.sh
# fills it where PyPI is reachable) into $GPU_VALIDATION_WORK/site, with no network access.
#
# trtllm-operator-ptq / trtllm-operator-eval (the tools the rendered plans call) are put on PATH as
# wrappers around `python3 -m trtllm_operator.builder.{ptq,evaluate}` of this checkout.
# TRTLLM_PTQ_SAVE_MODELOPT_STATE=1 makes the PTQ tool save the fake-quant state next to each export:
# without TensorRT-LLM that is how trtllm-operator-eval measures a quantized model.
#
# Results: $OUT (default $GPU_VALIDATION_WORK/out): results.json, pytest.log, builder logs (the nvfp4
# refusal, the first fp8 build, the stand-in tensorrt build).
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
WORK=${GPU_VALIDATION_WORK:-/tmp/gpu-validation}
OUT=${OUT:-$WORK/out}
SITE=$WORK/site
PY=${PYTHON:-python3}
mkdir -p "$WORK/bin" "$OUT" "$SITE"

if compgen -G "$REPO/.whl/*.whl" >/dev/null; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" \
    "$REPO"/.whl/*.whl
  echo "installed into $SITE: $(cd "$REPO/.whl" && ls -1 ./*.whl | sed 's|^\./||' | tr '\n' ' ')"
fi

export PYTHONPATH="$REPO/operator:$SITE${PYTHONPATH:+:$PYTHONPATH}"
for tool in ptq:trtllm-operator-ptq evaluate:trtllm-operator-eval; do
  module=${tool%%:*}
  name=${tool#*:}
  cat >"$WORK/bin/$name" <<EOF
#!/bin/sh
# $name of $REPO (written by hack/gpu-validation.sh)
export PYTHONPATH="$PYTHONPATH"
exec "$(command -v "$PY")" -m trtllm_operator.builder.$module "\$@"
EOF
  chmod +x "$WORK/bin/$name"
done
export PATH="$WORK/bin:$PATH"

export TRTLLM_PTQ_SAVE_MODELOPT_STATE=1
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1
export PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
export TORCH_EXTENSIONS_DIR=${TORCH_EXTENSIONS_DIR:-$WORK/torch_extensions}
export MAX_JOBS=${MAX_JOBS:-8}
export GPU_VALIDATION_WORK=$WORK OUT

cd "$REPO"
exec "$PY" "$REPO/hack/gpu_validation.py" --work "$WORK" --out "$OUT" "$@"
