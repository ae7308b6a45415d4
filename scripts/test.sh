#!/usr/bin/env bash
# Set everything up on a fresh machine, then run the whole test suite (real InfluxDB, MLflow,
# Spark and Airflow processes, started by the tests themselves on free loopback ports).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
export PATH="$PWD/.venv/bin:$PATH"
echo "== ruff"
ruff check .
echo "== pytest"
set +e
python -m pytest "$@"
status=$?
set -e
if [ "$status" -eq 5 ]; then
  echo "pytest collected no tests: that is a failure here" >&2
  exit 1
fi
exit "$status"
