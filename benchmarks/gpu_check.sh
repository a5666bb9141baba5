#!/usr/bin/env bash
# Issue 15's GPU checks in one go, within 10 minutes on a GPU machine that has no internet: install nerfkit, build
# nerfacc's and tiny-cuda-nn's CUDA kernels for that one GPU architecture, run the tests that need CUDA, then
# `benchmarks/run.py --suite gpu-quick`. Every stage is timed, logged and has its own time limit; a stage that fails
# is logged and the next one still runs (a benchmark entry whose kernels did not build is skipped with the reason).
#
# Preparation on the developer machine, in the repository root. The three folders are git-ignored and travel to the
# GPU machine as carried paths (about 45 MB together; the working tree that travels is limited to 64 MiB, which is
# why tiny-cuda-nn goes as a 2 MB archive rather than its 20 MB folder):
#
#   mkdir -p .vendor .data .whl
#   tar czf .vendor/tiny-cuda-nn.tar.gz -C ../shared/vendor tiny-cuda-nn
#   cp -r ../shared/data/lego .data/lego
#   python -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#     --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
#     -d .whl nerfacc==0.5.3 ninja tyro docstring-parser typeguard
#
# nerfacc 0.5.3 on PyPI is a pure-Python wheel whose kernels torch's JIT builds on first use (nvcc and ninja);
# tyro, docstring-parser and typeguard are nerfkit dependencies missing from the GPU machine's image (torch, numpy,
# rich, pyyaml, pillow, imageio, scikit-image, jaxtyping, tensorboard, pytest and ninja are there). Keep one version
# of each wheel. Then, on the GPU machine, from the repository root: `bash benchmarks/gpu_check.sh` (with the device
# tool: carry .vendor, .data and .whl, timeout 600).
#
# Settings, all optional: OUT (folder for the logs and JSON; default benchmarks/out/gpu_check), PYTHON (python3),
# LEGO_DIR (default ../shared/data/lego, else .data/lego), TCNN_SRC (tiny-cuda-nn source folder or .tar.gz; default
# .vendor/tiny-cuda-nn or .vendor/tiny-cuda-nn.tar.gz), WHEEL_DIR (.whl), CUDA_ARCH (e.g. 90; default the GPU's),
# GPU_TESTS (pytest arguments; default the test files that need CUDA), GPU_CHECK_SECONDS (570: when the last stage
# is stopped, counted from the start).
#
# Stages and their limits (seconds): environment 30, install 60, kernels 300 (nerfacc and tiny-cuda-nn build side by
# side), gpu-tests 75, gpu-quick whatever is left (about 5 minutes when the builds take 3).
set -uo pipefail
shopt -s nullglob

cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 2
PY=${PYTHON:-python3}
OUT_DIR=${OUT:-benchmarks/out/gpu_check}
WHEEL_DIR=${WHEEL_DIR:-.whl}
DEADLINE=${GPU_CHECK_SECONDS:-570}
MIN_STAGE_SECONDS=15
SITE=/tmp/nerfkit-gpu-check/site
WORK=/tmp/nerfkit-gpu-check/work
PIP_TARGET=()
CUDA_ARCH=${CUDA_ARCH:-}
SUMMARY=$(mktemp)
mkdir -p "$OUT_DIR"
export PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1 PIP_ROOT_USER_ACTION=ignore
export MAX_JOBS=${MAX_JOBS:-$(nproc)}

if [[ -n ${LEGO_DIR:-} ]]; then
  LEGO=$LEGO_DIR
elif [[ -d ../shared/data/lego ]]; then
  LEGO=../shared/data/lego
else
  LEGO=.data/lego
fi

record() { # record STAGE OUTCOME SECONDS: one line of the final summary
  printf '%-16s %-24s %5s s\n' "$1" "$2" "$3" | tee -a "$SUMMARY"
}

outcome() {
  case $1 in
    0) echo ok ;;
    124 | 137) echo "stopped at its limit" ;;
    *) echo "failed (exit $1)" ;;
  esac
}

pip_install() { # offline, into python's environment, or into $SITE once that proved read-only (use_site)
  timeout "$STAGE_LIMIT" "$PY" -m pip install -q --no-index --no-deps ${PIP_TARGET[@]+"${PIP_TARGET[@]}"} "$@"
}

use_site() {
  echo "installing into python's environment failed; installing into $SITE (on PYTHONPATH) instead"
  mkdir -p "$SITE" && PIP_TARGET=(--upgrade --target "$SITE") && export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}"
}

stage() { # stage NAME LIMIT: runs the function NAME within min(LIMIT, time left) and records how it went
  local name=$1 left=$((DEADLINE - SECONDS)) start=$SECONDS rc
  STAGE_LIMIT=$(($2 < left ? $2 : left))
  if ((STAGE_LIMIT < MIN_STAGE_SECONDS)); then
    record "${name//_/-}" "not run: no time left" 0
    return
  fi
  printf '\n== %s (limit %s s, %s s into the check)\n' "${name//_/-}" "$STAGE_LIMIT" "$SECONDS"
  "$name"
  rc=$?
  record "${name//_/-}" "$(outcome "$rc")" $((SECONDS - start))
  ((rc == 0)) || FAILED=1
}

environment() {
  timeout 20 nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || echo "nvidia-smi: none"
  nvcc --version | tail -n 2 || echo "nvcc: not on PATH (nerfacc and tiny-cuda-nn cannot build)"
  "$PY" - <<'EOF'
import os, platform, torch
print(f"python {platform.python_version()}, torch {torch.__version__} (CUDA {torch.version.cuda}), {os.cpu_count()} CPUs")
for index in range(torch.cuda.device_count() if torch.cuda.is_available() else 0):
    print(f"GPU {index}: {torch.cuda.get_device_name(index)}, capability {torch.cuda.get_device_capability(index)}")
EOF
  CUDA_ARCH=${CUDA_ARCH:-$("$PY" -c 'import torch; print("%d%d" % torch.cuda.get_device_capability())' 2>/dev/null)}
  CUDA_ARCH=${CUDA_ARCH:-90}
  # Every later process (the benchmark's too) must see the same list, or torch's JIT would rebuild nerfacc for it.
  export TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-${CUDA_ARCH%?}.${CUDA_ARCH: -1}}
  if [[ -z ${CUDA_HOME:-} ]] && command -v nvcc >/dev/null; then
    CUDA_HOME=$(dirname "$(dirname "$(readlink -f "$(command -v nvcc)")")") && export CUDA_HOME
  fi
  echo "kernels are built for sm_$CUDA_ARCH only (TORCH_CUDA_ARCH_LIST $TORCH_CUDA_ARCH_LIST, CUDA_HOME" \
    "${CUDA_HOME:-unset}, $MAX_JOBS jobs); lego: $LEGO"
  [[ -f $LEGO/transforms_test.json ]] || { echo "no lego scene at $LEGO: see this script's header"; return 1; }
}

install_nerfkit() { # the carried wheels, then nerfkit itself (editable, unless it has to go into $SITE)
  local wheels=("$WHEEL_DIR"/*.whl)
  if ((${#wheels[@]})); then
    echo "wheels: ${wheels[*]##*/}"
    pip_install "${wheels[@]}" || { use_site && pip_install "${wheels[@]}"; } || return
  else
    echo "no wheels in $WHEEL_DIR: using what is installed"
  fi
  if ((${#PIP_TARGET[@]})); then
    pip_install --no-build-isolation . || return
  else
    pip_install --no-build-isolation -e . || { use_site && pip_install --no-build-isolation .; } || return
  fi
  "$PY" -c 'from nerfkit.plugins.registry import get_registry; print("methods:", *sorted(get_registry().methods))'
}

build_nerfacc() { # imports nerfacc's kernels (torch's JIT build, cached for every later process) and calls one
  local start=$SECONDS rc
  timeout "$STAGE_LIMIT" "$PY" - <<'EOF'
import sys
import time

start = time.perf_counter()
import torch

if not torch.cuda.is_available():
    sys.exit("torch sees no CUDA device: no kernels to build")
import nerfacc
from nerfacc.cuda import _backend

assert _backend._C is not None, "nerfacc found no nvcc, so it built nothing"
print(f"nerfacc {nerfacc.__version__}: kernels built or loaded in {time.perf_counter() - start:.1f} s")
inputs = torch.arange(1.0, 10.0, device="cuda")
packed_info = torch.tensor([[0, 2], [2, 3], [5, 4]], device="cuda")
expected = torch.tensor([0.0, 1.0, 0.0, 3.0, 7.0, 0.0, 6.0, 13.0, 21.0], device="cuda")
assert torch.equal(nerfacc.exclusive_sum(inputs, packed_info), expected), "exclusive_sum gave a wrong answer"
print("nerfacc: a packed exclusive sum on the GPU is right")
EOF
  rc=$?
  record build-nerfacc "$(outcome "$rc")" $((SECONDS - start))
  return "$rc"
}

tcnn_source() {
  local candidate
  for candidate in "${TCNN_SRC:-}" .vendor/tiny-cuda-nn .vendor/tiny-cuda-nn.tar.gz ../shared/vendor/tiny-cuda-nn; do
    [[ -n $candidate && -e $candidate ]] && echo "$candidate" && return
  done
  return 1
}

install_tcnn() { # builds tiny-cuda-nn's PyTorch bindings in a copy of its source (the build writes into the tree)
  local source tree=$WORK/tiny-cuda-nn
  if "$PY" -c 'import tinycudann' 2>/dev/null; then
    echo "tiny-cuda-nn is already installed"
    return
  fi
  source=$(tcnn_source) || { echo "no tiny-cuda-nn source: set TCNN_SRC or see this script's header"; return 1; }
  echo "tiny-cuda-nn from $source, for sm_$CUDA_ARCH"
  rm -rf "$tree" && mkdir -p "$tree" || return
  if [[ -f $source ]]; then
    tar xzf "$source" -C "$tree" --strip-components=1 || return
  else
    cp -r "$source/." "$tree" || return
  fi
  (cd "$tree/bindings/torch" && export TCNN_CUDA_ARCHITECTURES=$CUDA_ARCH && pip_install --no-build-isolation .) &&
    "$PY" -c 'import tinycudann; print("tiny-cuda-nn imports")'
}

build_tcnn() {
  local start=$SECONDS rc
  install_tcnn
  rc=$?
  record build-tcnn "$(outcome "$rc")" $((SECONDS - start))
  return "$rc"
}

show_log() { # show_log FILE EXIT_CODE: its last lines, and its error lines when the step failed
  echo "-- $1"
  ((${2} == 0)) || grep -E '[Ee]rror|ERROR|fatal' "$1" | grep -v '^note:' | tail -n 8
  tail -n 3 "$1"
}

kernels() {
  local nerfacc_pid nerfacc_rc tcnn_rc
  build_nerfacc >"$OUT_DIR/build-nerfacc.log" 2>&1 &
  nerfacc_pid=$!
  build_tcnn >"$OUT_DIR/build-tcnn.log" 2>&1
  tcnn_rc=$?
  wait "$nerfacc_pid"
  nerfacc_rc=$?
  show_log "$OUT_DIR/build-nerfacc.log" "$nerfacc_rc"
  show_log "$OUT_DIR/build-tcnn.log" "$tcnn_rc"
  return $((nerfacc_rc || tcnn_rc))
}

gpu_tests() {
  local arguments
  if [[ -n ${GPU_TESTS:-} ]]; then
    read -ra arguments <<<"$GPU_TESTS"
  elif grep -qs 'mark\.gpu' tests/*.py; then
    arguments=(-m gpu tests)
  else
    mapfile -t arguments < <(grep -lE 'cuda\.is_available\(\)|package_status\(' tests/test_*.py)
  fi
  ((${#arguments[@]})) || { echo "no test needs CUDA"; return 0; }
  echo "pytest ${arguments[*]}"
  timeout "$STAGE_LIMIT" "$PY" -m pytest -q -rs -p no:cacheprovider "${arguments[@]}" >"$OUT_DIR/gpu-tests.log" 2>&1
  local rc=$?
  tail -n 30 "$OUT_DIR/gpu-tests.log"
  return "$rc"
}

gpu_quick() {
  local report=$OUT_DIR/gpu-quick.json rc
  timeout --kill-after=10 "$STAGE_LIMIT" "$PY" benchmarks/run.py --suite gpu-quick --data "$LEGO" \
    --output "$report" >"$OUT_DIR/gpu-quick.log" 2>&1
  rc=$?
  if ((rc == 124 || rc == 137)) && [[ -f $report ]]; then
    echo "stopped at its limit; the entries that finished:"
    "$PY" benchmarks/run.py --show "$report"
  elif grep -q 'suite gpu-quick:' "$OUT_DIR/gpu-quick.log"; then
    sed -n '/suite gpu-quick:/,$p' "$OUT_DIR/gpu-quick.log"
  else
    tail -n 30 "$OUT_DIR/gpu-quick.log"
  fi
  return "$rc"
}

main() {
  FAILED=0
  echo "nerfkit GPU check, $(date -u +%Y-%m-%dT%H:%M:%SZ), commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
  stage environment 30
  stage install_nerfkit 60
  stage kernels 300
  stage gpu_tests 75
  stage gpu_quick $((DEADLINE - SECONDS))
  printf '\n== summary (logs and gpu-quick.json in %s)\n' "$OUT_DIR"
  cat "$SUMMARY"
  return "$FAILED"
}

main 2>&1 | tee "$OUT_DIR/gpu_check.log"
status=${PIPESTATUS[0]}
rm -f "$SUMMARY"
exit "$status"
