#!/usr/bin/env bash
# Builds the pybind11 kernel module with CUDA (no TensorFlow needed) and runs
# the kernel tests GPU-vs-CPU plus a small GPU/CPU timing, on a bare CUDA
# machine with python3, numpy, pytest, pybind11, cmake and nvcc.
#
#   tools/gpu_check.sh            # logs go to $OUT (device tool) or ./gpu_check_out
set -euo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-$PWD/gpu_check_out}"
mkdir -p "$out"
build="$(mktemp -d)"
py="${PYTHON:-python3}"
{
  echo "== $(date -u) on $(hostname)"
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
  nvcc --version | tail -1
  generator=()
  command -v ninja >/dev/null && generator=(-G Ninja)
  cmake -S . -B "$build" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release \
    -DDEEPCTR_OPS_WITH_TF=OFF -DDEEPCTR_OPS_WITH_CUDA=ON \
    -DPython_EXECUTABLE="$(command -v "$py")" \
    -Dpybind11_DIR="$("$py" -m pybind11 --cmakedir)"
  cmake --build "$build" --parallel
} 2>&1 | tee "$out/gpu_build.log"

export DEEPCTR_OPS_KERNELS_DIR="$build"
status=0
"$py" -m pytest tests/kernels --confcutdir=tests/kernels -p no:cacheprovider -v -rs \
  2>&1 | tee "$out/gpu_tests.log" || status=$?
"$py" tools/gpu_bench.py 2>&1 | tee "$out/gpu_bench.log" || status=$?
exit "$status"
