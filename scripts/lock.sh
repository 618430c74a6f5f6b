#!/usr/bin/env bash
# Re-resolve the dependency ranges in pyproject.toml and rewrite requirements.lock.
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
python3 -m venv "$tmp/venv"
"$tmp/venv/bin/pip" install --quiet -e '.[dev]'
{
  echo "# Exact versions of every package refundguard installs, direct and transitive."
  echo "# Regenerate with: bash scripts/lock.sh  (fresh venv, pip install -e '.[dev]', pip freeze)"
  "$tmp/venv/bin/pip" freeze --all --exclude-editable | grep -v -iE "^(pip|refundguard)[= ]"
} > requirements.lock
rm -rf "$tmp"
