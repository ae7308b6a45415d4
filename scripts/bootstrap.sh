#!/usr/bin/env bash
# Set up a fresh Debian 12 machine for Vigil: system packages, uv, the pinned virtual environment.
#
# Idempotent: every step checks first and does only what is missing, so running it again is cheap
# (a few seconds). Needs root for apt (or sudo); reaches only Debian's and PyPI's package registries.
#
#   bash scripts/bootstrap.sh            # then: .venv/bin/vigil up
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

PYTHON_VERSION="${PYTHON_VERSION:-3.11}"
# Debian packages: influxdb (influxd 1.6.7), chromium + chromium-driver (browser checks of the UIs),
# libopenblas0 (BLAS for Spark MLlib; silences the netlib warning), default-jre-headless (Spark's JVM).
APT_PACKAGES=(influxdb chromium chromium-driver libopenblas0 default-jre-headless)

step() { printf '[bootstrap] %s\n' "$*"; }

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else SUDO=""; fi
fi

# --- 1. Debian packages (only the missing ones) ------------------------------------------------------
missing=()
for pkg in "${APT_PACKAGES[@]}"; do
    if [ "$pkg" = default-jre-headless ] && command -v java >/dev/null 2>&1; then
        continue  # any Java already on the machine will do for Spark
    fi
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$pkg")
    fi
done
if [ "${#missing[@]}" -gt 0 ]; then
    step "apt-get install ${missing[*]}"
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
    step "Debian packages present: ${APT_PACKAGES[*]}"
fi

# --- 2. uv ----------------------------------------------------------------------------------------------
if ! command -v uv >/dev/null 2>&1; then
    step "pip install uv"
    PIP_BREAK_SYSTEM_PACKAGES=1 python3 -m pip install --quiet uv \
        || PIP_BREAK_SYSTEM_PACKAGES=1 python3 -m pip install --quiet --user uv
    export PATH="$HOME/.local/bin:$PATH"
fi
UV="$(command -v uv)"
step "uv: $("$UV" --version)"

# --- 3. the virtual environment -------------------------------------------------------------------------
if [ ! -x .venv/bin/python ] || ! .venv/bin/python -c "import sys; sys.exit(sys.version_info[:2] != tuple(map(int, '$PYTHON_VERSION'.split('.'))))"; then
    step "uv venv .venv (python $PYTHON_VERSION)"
    "$UV" venv --python "$PYTHON_VERSION" .venv
fi

# uv pip sync is a no-op when the venv already matches the lock; it removes what is not in it
# (including the editable project, which the next step puts back).
step "uv pip sync requirements.lock"
"$UV" pip sync --python .venv/bin/python requirements.lock
step "uv pip install --no-deps -e ."
"$UV" pip install --python .venv/bin/python --no-deps -e .

step "done: .venv/bin/vigil up   (or: .venv/bin/pytest)"
