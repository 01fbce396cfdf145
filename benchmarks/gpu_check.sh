#!/usr/bin/env bash
# The GPU check: everything a session lent a GPU runs, in one call of at most 8 minutes.
#
#   bash benchmarks/gpu_check.sh              # on the GPU machine (device tool: timeout_s 480)
#   bash benchmarks/gpu_check.sh --rehearse   # here, against the stand-in CuPy (no GPU)
#
# Runs tests/gpu/test_gpu.py with the real-CuPy API and compile tests, the contract
# suite's cuda-gpu backend, benchmarks/gpu.py --size 1e9, fastinit.jax on JAX's GPU
# (benchmarks/jax_gpu.py: bits against the NumPy backend, the guards XLA:GPU needs,
# speed against jax.random), and writes docs/benchmarks-gpu.md (device name included).
# JAX_ONLY=1 runs the JAX step alone. Everything lands in $OUT (at most 8 files):
# summary.txt, tests.log, junit-tests.xml, junit-contract.xml, bench.log (the JAX step's
# log too), benchmarks-gpu.json, jax-gpu.json, benchmarks-gpu.md. Uses only what the machine has: python3
# with CuPy, PyTorch, pytest...; the project goes on the path (PYTHONPATH), nothing is
# downloaded. Each step gets a time cap and the whole script a budget ($BUDGET
# seconds, default 450); a failing step does not stop the others. Exit status:
# 0 when every step passed.
set -u
cd "$(dirname "$0")/.."
ROOT=$(pwd)
MODE=gpu
SIZE=${SIZE:-1e9}
ORTHOGONAL=${ORTHOGONAL:-8192x8192,8192x2048}
JAX_ARGS=(--size 2.68e8 --require-gpu)
if [ "${1:-}" = "--rehearse" ]; then
  MODE=rehearsal
  SIZE=${SIZE_REHEARSAL:-1e6}
  ORTHOGONAL=512x512,512x128
  JAX_ARGS=(--bits-size 4096 --size 1e5 --rounds 2)
  export FASTINIT_REHEARSE=1
  export PYTHONPATH="$ROOT/tests/helpers/rehearsal:$ROOT/tests:$ROOT${PYTHONPATH:+:$PYTHONPATH}"
elif [ -n "${1:-}" ]; then
  echo "usage: $0 [--rehearse]" >&2
  exit 2
else
  export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
fi
PYTHON=${PYTHON:-python3}
OUT=${OUT:-$(mktemp -d /tmp/gpu_check.XXXXXX)}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
# JAX (to_jax tests) would otherwise take 75% of the GPU's memory when first used.
export XLA_PYTHON_CLIENT_PREALLOCATE=false
export FASTINIT_CACHE_DIR=${FASTINIT_CACHE_DIR:-/tmp/fastinit-kernels}
BUDGET=${BUDGET:-450}
START=$(date +%s)
STATUS=0
SUMMARY="$OUT/summary.txt"
: > "$SUMMARY"

note() { echo "$*" >> "$SUMMARY"; }

# step NAME CAP LOG COMMAND...: run COMMAND with at most CAP seconds (less if the budget
# is nearly spent), output appended to LOG, outcome noted in the summary.
step() {
  local name=$1 cap=$2 log=$3
  shift 3
  local left=$(( BUDGET - ($(date +%s) - START) - 15 ))
  [ "$cap" -gt "$left" ] && cap=$left
  if [ "$cap" -le 5 ]; then
    note "SKIP $name: the budget of ${BUDGET}s is spent"
    STATUS=1
    return
  fi
  local t0=$(date +%s) rc
  echo "== $name (cap ${cap}s): $*" >> "$log"
  timeout --kill-after=10 "$cap" "$@" >> "$log" 2>&1
  rc=$?
  local took=$(( $(date +%s) - t0 ))
  if [ $rc -eq 0 ]; then
    note "PASS $name (${took}s)"
  else
    [ $rc -eq 124 ] && note "TIMEOUT $name after ${took}s" || note "FAIL $name: exit $rc (${took}s)"
    STATUS=1
  fi
}

note "fastinit GPU check ($MODE), $(date -u '+%Y-%m-%d %H:%M:%S UTC'), out=$OUT"
{
  echo "== machine"
  uname -a
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 \
    || echo "nvidia-smi: not available"
  "$PYTHON" - <<'PY' 2>&1
import importlib, platform
print("python", platform.python_version())
for name in ("numpy", "cupy", "torch", "jax", "numba", "scipy", "ml_dtypes", "pytest",
             "hypothesis"):
    try:
        module = importlib.import_module(name)
        print(name, getattr(module, "__version__", "?"))
    except Exception as exc:
        print(name, "missing:", type(exc).__name__, exc)
import fastinit, fastinit.gpu
print("fastinit", fastinit.__version__, "from", fastinit.__file__)
print("fastinit.gpu.is_available():", fastinit.gpu.is_available())
try:
    from fastinit.backends.cuda import check
    check()
except Exception as exc:
    print("missing piece:", exc)
PY
} >> "$SUMMARY" 2>&1

# fastinit.jax on XLA (benchmarks/jax_gpu.py): every distribution and dtype on JAX's
# default device against the NumPy backend, each guard of fastinit.backends.xla off to
# see which this compiler needs, and the speed against jax.random.normal there.
jax_step() {
  if ! "$PYTHON" -c "import jax" 2>/dev/null; then
    note "SKIP fastinit.jax on XLA: JAX is not installed"
    return
  fi
  step "fastinit.jax on XLA (benchmarks/jax_gpu.py)" 100 "$OUT/bench.log" \
    "$PYTHON" benchmarks/jax_gpu.py "${JAX_ARGS[@]}" --json "$OUT/jax-gpu.json"
  if [ -s "$OUT/jax-gpu.json" ]; then
    "$PYTHON" benchmarks/jax_gpu.py --from-json "$OUT/jax-gpu.json" | grep -E \
      "^(## JAX|jax |Bits:|Needed)" >> "$SUMMARY"
  fi
}
if [ "${JAX_ONLY:-0}" = 1 ]; then
  jax_step
  note "done in $(( $(date +%s) - START ))s, status $STATUS; files: $(ls "$OUT" | tr '\n' ' ')"
  cat "$SUMMARY"
  exit $STATUS
fi

PYTEST=("$PYTHON" -m pytest -q -ra -p no:cacheprovider)
# One hung test must not take the whole budget (pytest-timeout, where installed).
"$PYTHON" -c "import pytest_timeout" 2>/dev/null && PYTEST+=(--timeout=90)
# The caps (150 + 60 + 100 + 95 + 15 = 420 s) fit the budget with its 15 s margin and
# the machine's summary, so no step is squeezed by the ones before it.
step "tests/gpu/test_gpu.py + CuPy API + compile" 150 "$OUT/tests.log" \
  "${PYTEST[@]}" --junitxml="$OUT/junit-tests.xml" tests/gpu/test_gpu.py \
  tests/gpu/test_cupy_api.py tests/backends/test_cuda_compile.py
step "contract suite, cuda-gpu backend" 60 "$OUT/tests.log" \
  "${PYTEST[@]}" --junitxml="$OUT/junit-contract.xml" tests/backends/test_contract.py -k cuda-gpu
jax_step
step "benchmarks/gpu.py --size $SIZE" 95 "$OUT/bench.log" \
  "$PYTHON" benchmarks/gpu.py --size "$SIZE" --orthogonal "$ORTHOGONAL" \
  --json "$OUT/benchmarks-gpu.json"
if [ -s "$OUT/benchmarks-gpu.json" ]; then
  step "docs/benchmarks-gpu.md" 20 "$OUT/bench.log" "$PYTHON" benchmarks/gpu_report.py \
    "$OUT/benchmarks-gpu.json" "$OUT/benchmarks-gpu.md" "$OUT/junit-tests.xml" \
    "$OUT/junit-contract.xml"
  [ -s "$OUT/jax-gpu.json" ] && "$PYTHON" benchmarks/jax_gpu.py --from-json \
    "$OUT/jax-gpu.json" >> "$OUT/benchmarks-gpu.md"
  # On a GPU the page is the project's; a rehearsal's numbers stay in $OUT.
  [ "$MODE" = gpu ] && [ -s "$OUT/benchmarks-gpu.md" ] && cp "$OUT/benchmarks-gpu.md" docs/
else
  note "FAIL docs/benchmarks-gpu.md: the benchmark wrote no results"
  STATUS=1
fi
grep -h -E "^(FAILED|ERROR)|passed|failed" "$OUT/tests.log" | tail -n 20 >> "$SUMMARY"
tail -n 25 "$OUT/bench.log" >> "$SUMMARY"
note "done in $(( $(date +%s) - START ))s, status $STATUS; files: $(ls "$OUT" | tr '\n' ' ')"
cat "$SUMMARY"
exit $STATUS
