#!/usr/bin/env bash
# Rerun the tests that use the tiny random model (`pytest -m noise`) under other noise, so that a
# test that bets on what noise looks like fails here before another CPU's float kernels make it
# fail elsewhere. Each variant is one pytest run:
#   seed   SPECC_TEST_TINY_SEED=2: other weights, so other noise (the cheapest; .ci/run runs it).
#          Seed 2 made the noise-attacker bet of issue 26 fail here as the AMD machine did.
#   fp     torch's and MKL's AVX2 kernels on one thread, as on a CPU without AVX-512 (CI's Intel
#          Xeon has it; the AMD EPYC where a noise bet failed has not): other kernels, other sums.
#          Environment variables, so the compiles the tests start as subprocesses get them too.
# Usage: bench/portability.sh [seed|fp|all] [extra pytest args]   (default: all)
# Run from the repository root in the project's environment (after `pip install ".[dev]"`).
set -euo pipefail
cd "$(dirname "$0")/.."

which="${1:-all}"
shift || true
case "$which" in seed|fp|all) ;; *) echo "usage: bench/portability.sh [seed|fp|all] [pytest args]" >&2; exit 2 ;; esac

status=0
run() {
  local name="$1"; shift
  echo "+ $* pytest -q -m noise $EXTRA"
  local start=$SECONDS
  # shellcheck disable=SC2086  # EXTRA: the caller's pytest arguments, split as typed
  if env "$@" pytest -q -m noise -p no:cacheprovider $EXTRA; then
    echo "portability: $name passed ($((SECONDS - start)) s)"
  else
    echo "portability: $name FAILED ($((SECONDS - start)) s)" >&2
    status=1
  fi
}

EXTRA="$*"
if [ "$which" = seed ] || [ "$which" = all ]; then
  run "tiny model seed 2" SPECC_TEST_TINY_SEED=2
fi
if [ "$which" = fp ] || [ "$which" = all ]; then
  run "AVX2 kernels, 1 thread" ATEN_CPU_CAPABILITY=avx2 MKL_ENABLE_INSTRUCTIONS=AVX2 OMP_NUM_THREADS=1
fi
exit $status
