#!/usr/bin/env bash
# Set up, then run the whole pipeline: simulate -> validate -> sentiment -> features ->
# train -> evaluate -> export. Ends with models/scorer and reports/metrics.json.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PATH="$PWD/.venv/bin:$PATH"
dvc repro
dvc metrics show
