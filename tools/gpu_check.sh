#!/usr/bin/env bash
# Builds the pybind11 kernel module with CUDA (no TensorFlow needed) and runs
# the kernel tests GPU-vs-CPU plus a small GPU/CPU timing, on a bare CUDA
# machine with python3, numpy, pytest, pybind11, cmake and nvcc.
#
#   tools/gpu_check.sh            # logs go to $OUT (device tool) or ./gpu_check_out
#
# Environment: CUDA_ARCHS (default "native": the GPU found), PYTHON,
# GPU_CHECK_SANITIZE=1 to also run the GPU review cases under
# compute-sanitizer memcheck (bounded by GPU_CHECK_SANITIZE_TIMEOUT seconds).
set -uo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-$PWD/gpu_check_out}"
mkdir -p "$out"
build="$(mktemp -d)"
py="${PYTHON:-python3}"

missing=$("$py" - <<'EOF'
import importlib.util
need = ["numpy", "pytest", "pybind11", "ml_dtypes"]
print(" ".join(n for n in need if importlib.util.find_spec(n) is None))
EOF
)
if [ -n "$missing" ]; then
  echo "gpu_check: missing Python packages: $missing (pip install $missing)" | tee "$out/gpu_summary.log"
  exit 2
fi

# CMake >= 3.24 (CUDA architecture "native"); many CUDA images ship an older
# one, so fall back to the pip package where pip can reach an index.
cmake_ok() {
  command -v cmake >/dev/null &&
    "$py" -c "import sys; v = tuple(map(int, sys.argv[1].split('.')[:2])); sys.exit(v < (3, 24))" \
      "$(cmake --version | head -1 | awk '{print $3}')"
}
if ! cmake_ok; then
  echo "gpu_check: CMake >= 3.24 is needed; trying pip install cmake"
  "$py" -m pip install -q cmake && export PATH="$("$py" -c 'import cmake, os; print(os.path.join(cmake.CMAKE_BIN_DIR))'):$PATH"
  cmake_ok || { echo "gpu_check: no CMake >= 3.24 (pip install cmake)" | tee "$out/gpu_summary.log"; exit 2; }
fi

{
  echo "== $(date -u) on $(hostname)"
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
  nvcc --version | tail -1
  cmake --version | head -1
  generator=()
  command -v ninja >/dev/null && generator=(-G Ninja)
  cmake -S . -B "$build" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release \
    -DDEEPCTR_OPS_WITH_TF=OFF -DDEEPCTR_OPS_WITH_CUDA=ON \
    -DDEEPCTR_OPS_CUDA_ARCHITECTURES="${CUDA_ARCHS:-native}" \
    -DPython_EXECUTABLE="$(command -v "$py")" \
    -Dpybind11_DIR="$("$py" -m pybind11 --cmakedir)" &&
  cmake --build "$build" --parallel
} 2>&1 | tee "$out/gpu_build.log"
if [ "${PIPESTATUS[0]}" -ne 0 ]; then
  echo "gpu_check: build failed (see gpu_build.log)" | tee "$out/gpu_summary.log"
  exit 1
fi

export DEEPCTR_OPS_KERNELS_DIR="$build"
status=0
"$py" -m pytest tests/kernels --confcutdir=tests/kernels -p no:cacheprovider -q -rs \
  --junitxml="$out/gpu_tests.xml" 2>&1 | tee "$out/gpu_tests.log" || status=1
"$py" tools/gpu_bench.py 2>&1 | tee "$out/gpu_bench.log" || status=1

# A build without a kernel image for this GPU must fail with a message that
# names the CUDA version, the architectures built, the GPU and what to do.
mismatch="$(mktemp -d)"
if cmake -S . -B "$mismatch" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release \
     -DDEEPCTR_OPS_WITH_TF=OFF -DDEEPCTR_OPS_WITH_CUDA=ON -DDEEPCTR_OPS_CUDA_ARCHITECTURES=80-real \
     -DPython_EXECUTABLE="$(command -v "$py")" \
     -Dpybind11_DIR="$("$py" -m pybind11 --cmakedir)" >/dev/null &&
   cmake --build "$mismatch" --parallel --target _kernels >/dev/null; then
  DEEPCTR_OPS_KERNELS_DIR="$mismatch" "$py" tools/gpu_mismatch_check.py 2>&1 \
    | tee "$out/gpu_mismatch.log" || status=1
else
  echo "mismatch build failed" | tee "$out/gpu_mismatch.log"
  status=1
fi

if [ "${GPU_CHECK_SANITIZE:-0}" = 1 ] && command -v compute-sanitizer >/dev/null; then
  # Every kernel's GPU cases (small shapes) under memcheck.
  timeout "${GPU_CHECK_SANITIZE_TIMEOUT:-240}" compute-sanitizer --tool memcheck \
    --error-exitcode 3 "$py" -m pytest tests/kernels/test_gpu_review_cases.py \
    tests/kernels/test_attention_pool_kernels.py tests/kernels/test_gru_kernels.py \
    tests/kernels/test_nonfinite_kernels.py tests/kernels/test_embedding_pool_kernels.py -k gpu \
    --confcutdir=tests/kernels -p no:cacheprovider -q -x 2>&1 | tail -40 \
    | tee "$out/gpu_sanitizer.log"
  echo "compute-sanitizer exit: ${PIPESTATUS[0]}" | tee -a "$out/gpu_sanitizer.log"
fi

"$py" - "$out" <<'EOF' | tee "$out/gpu_summary.log"
import re, sys, xml.etree.ElementTree as ET
out = sys.argv[1]
try:
    suite = ET.parse(f"{out}/gpu_tests.xml").getroot()
    suite = suite if suite.tag == "testsuite" else suite.find("testsuite")
    tests, fails = int(suite.get("tests")), int(suite.get("failures")) + int(suite.get("errors"))
    skips = int(suite.get("skipped"))
    line = f"kernel tests: {tests - fails - skips} passed, {fails} failed, {skips} skipped"
except Exception as exc:  # noqa: BLE001
    line = f"kernel tests: no report ({exc})"
rates = {}
try:
    for row in open(f"{out}/gpu_bench.log"):
        m = re.match(r"(\S+).*?\b(fwd|bwd)\s+[\d.]+\s+(\d+)\s", row)
        if m:
            rates.setdefault(f"{m.group(1)} {m.group(2)}", []).append(int(m.group(3)))
except OSError:
    pass
print(line + "; GB/s (max over cases): "
      + ", ".join(f"{k} {max(v)}" for k, v in rates.items()))
EOF
exit "$status"
