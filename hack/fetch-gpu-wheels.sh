#!/usr/bin/env bash
# Download (or build) into .whl/ the Python wheels that hack/gpu-validation.sh installs on a GPU
# machine that has PyTorch, transformers, safetensors, tokenizers, numpy, PyYAML, pytest and
# nvidia-ml-py but no network (the lent H100/H200 image). Run it on a machine with PyPI access:
#
#   bash hack/fetch-gpu-wheels.sh          # then carry .whl/ to the GPU machine
#
# Everything is pinned: these are the versions docs/gpu-validation.md was measured with.
# Compiled wheels are fetched for CPython 3.12 on manylinux x86_64 (the GPU image's python3).
set -euo pipefail
cd "$(dirname "$0")/.."
DEST=.whl
mkdir -p "$DEST"

# /.whl/ must never be committed (wheels are build inputs, not sources).
EXCLUDE=.git/info/exclude
if [ -d .git ]; then
  mkdir -p .git/info
  grep -qxF '/.whl/' "$EXCLUDE" 2>/dev/null || echo '/.whl/' >>"$EXCLUDE"
fi

PY=${PYTHON:-python3}
PLATFORMS=(--platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64
  --platform manylinux2014_x86_64 --platform manylinux1_x86_64)
download() {
  "$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    "${PLATFORMS[@]}" -d "$DEST" "$@"
}

# NVIDIA ModelOpt (pure Python) and what it needs beyond the GPU image.
download nvidia-modelopt==0.47.0 omegaconf==2.3.0 'pulp==3.3.2'
# The operator package: pydantic (+ its compiled core) and structlog. pynvml (nvidia-ml-py) is in the image.
download pydantic==2.14.4 pydantic-core==2.50.5 annotated-types==0.7.0 typing-inspection==0.4.5 \
  typing-extensions==4.16.0 structlog==26.1.0
# omegaconf pins antlr4-python3-runtime 4.9.*, published only as an sdist: build the (pure) wheel here.
if ! ls "$DEST"/antlr4_python3_runtime-4.9.3-*.whl >/dev/null 2>&1; then
  "$PY" -m pip wheel -q --no-deps --no-binary=:all: -w "$DEST" antlr4-python3-runtime==4.9.3
fi

ls -1 "$DEST"
du -sh "$DEST"
