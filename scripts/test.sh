#!/usr/bin/env bash
# Set everything up on a fresh machine, then run the whole test suite (real InfluxDB, MLflow,
# Spark and Airflow processes, started by the tests themselves on free loopback ports).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
export PATH="$PWD/.venv/bin:$PATH"
echo "== ruff"
ruff check .
echo "== lint-imports (the layers: pyproject.toml [tool.importlinter], docs/architecture.md)"
lint-imports --no-cache
# pytest, where exit 5 (no test collected) is a failure too.
run_pytest() {
  local rc=0
  python -m pytest "$@" || rc=$?
  if [ "$rc" -eq 5 ]; then
    echo "pytest collected no tests: that is a failure here" >&2
    rc=1
  fi
  return "$rc"
}
if [ "$#" -gt 0 ]; then
  echo "== pytest $*"
  run_pytest "$@"
  exit $?
fi
# The live stress suite measures this machine, so it runs first, while nothing else loads it
# (after the other tests, their InfluxDB's background compaction once raised a false alarm).
status=0
echo "== pytest: the stress suite against the live stack (~13 min, on a quiet machine)"
run_pytest -m live -rP || status=$?  # -rP: its table goes into the log
echo "== pytest: everything else"
run_pytest || status=$?
exit "$status"
