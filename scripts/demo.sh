#!/usr/bin/env bash
# Set everything up on a fresh machine, then run the main job: the full platform locally
# (InfluxDB, MLflow, Airflow, collector, detector, target app) with the demo loop.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
export PATH="$PWD/.venv/bin:$PATH"
exec vigil demo "$@"
