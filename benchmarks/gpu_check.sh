#!/usr/bin/env bash
# The one-shot GPU check (benchmarks/gpu_check.py says what it does, step by step).
#
#   bash benchmarks/gpu_check.sh [--out DIR] [--logs DIR] [--deadline-s 480]
#   bash benchmarks/gpu_check.sh --dry-run      # on any machine: check the plan only
#
# PYTHON picks the interpreter (default: python3, the one that holds a CUDA torch).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
exec "${PYTHON:-python3}" benchmarks/gpu_check.py "$@"
