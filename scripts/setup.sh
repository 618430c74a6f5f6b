#!/usr/bin/env bash
# Create .venv (if missing) and install exactly the versions in requirements.lock, then
# refundguard itself in editable mode. Needs only python3 (3.11+) with pip and venv.
# Idempotent: a second run with an unchanged lock file takes seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
quiet_pip() {
  # Some machines' pip configuration names local index folders that may not exist;
  # pip warns about each one, which says nothing about this project.
  .venv/bin/python -m pip "$@" --quiet --disable-pip-version-check 2> >(grep -v "is ignored" >&2)
}
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv with $("$PY" --version)"
  "$PY" -m venv .venv
fi
stamp=.venv/.refundguard-lock
if [ ! -f "$stamp" ] || ! cmp -s requirements.lock "$stamp"; then
  echo "setup: installing the pinned packages from requirements.lock (a few minutes, once)"
  quiet_pip install -r requirements.lock
  cp requirements.lock "$stamp"
fi
# setuptools and wheel come pinned from the lock file, so the build needs no download.
quiet_pip install --no-deps --no-build-isolation -e .
# Java runs only the Spark engine (features.engine: spark) and the Spark test tier; the
# local engine never needs it, so a missing java is a warning, not a failed set-up.
if ! java -version >/dev/null 2>&1; then
  echo "setup: warning: java not found; the Spark engine and tests need Java 17: apt-get install openjdk-17-jre-headless" >&2
fi
echo "setup: ready ($(.venv/bin/refundguard --help >/dev/null && echo 'refundguard installed'))"
