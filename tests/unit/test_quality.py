"""The code-quality gate: one ruff configuration and mypy on src/, run with the tests."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.fixtures import REPO

BIN = Path(sys.executable).parent


def test_ruff_is_clean() -> None:
    proc = subprocess.run([str(BIN / "ruff"), "check", "src", "tests", "benchmarks"], cwd=REPO,
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout[-5000:]


def test_mypy_is_clean() -> None:
    proc = subprocess.run([str(BIN / "mypy")], cwd=REPO, capture_output=True, text=True,
                          check=False)
    assert proc.returncode == 0, proc.stdout[-5000:]


def test_importing_the_package_has_no_side_effects(tmp_path: Path) -> None:
    code = (
        "import logging, os, sys\n"
        "before = set(os.listdir('.'))\n"
        "import refundguard, refundguard.paths, refundguard.config, refundguard.cli\n"
        "import refundguard.features.build, refundguard.data.validate, refundguard.model.train\n"
        "assert set(os.listdir('.')) == before, 'files created on import'\n"
        "assert not logging.getLogger().handlers, 'logging configured on import'\n"
        "assert 'mlflow' not in sys.modules, 'mlflow imported by the core modules'\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                          text=True, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
