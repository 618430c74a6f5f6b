"""Shared fixtures: a seeded rng, hand-built tables, and a tiny simulated world.

Tests under tests/e2e and tests/spark, and every test that needs the session's pipeline
run (the ``project`` fixture), are marked ``slow``; ``pytest -m "not slow"`` is the
fast tier.
"""

from __future__ import annotations

import os

# As the CLI does (refundguard.cli.main): LightGBM's OpenMP threads wait passively, so
# tests sharing 2 cores with subprocesses don't spin against each other. Set before
# anything loads LightGBM.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import settings
from tests.fixtures import REPO, TZ, hand_raw_tables, run, tiny_params_dict

from refundguard.data.validate import validate_tables

# Hypothesis: the suite's verdict must not depend on chance, so the default profile is
# derandomized (examples come from a fixed seed derived from each test). For a wider
# local search: HYPOTHESIS_PROFILE=long pytest ... (random seeds, more examples).
settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True)
settings.register_profile("long", derandomize=False, deadline=None, max_examples=1000)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(20241122)


@pytest.fixture
def hand_raw() -> dict[str, pd.DataFrame]:
    return hand_raw_tables()


@pytest.fixture
def hand_tables() -> dict[str, pd.DataFrame]:
    result = validate_tables(hand_raw_tables(), timezone=TZ, max_text_chars=2000)
    assert result.quarantine.empty
    return result.tables


@pytest.fixture
def tz() -> Iterator[str]:
    yield TZ


@pytest.fixture(scope="session")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the project in a temporary folder, after a full `dvc repro` on a tiny world.

    Session-scoped: the end-to-end run happens once; the pipeline, export, scorer and CLI
    tests read its outputs. Tests must not change them (copy what they modify).
    """
    import shutil

    import yaml

    root = tmp_path_factory.mktemp("project")
    shutil.copy(REPO / "dvc.yaml", root / "dvc.yaml")
    shutil.copytree(REPO / "src", root / "src",
                    ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    (root / "params.yaml").write_text(yaml.safe_dump(tiny_params_dict(), allow_unicode=True),
                                      encoding="utf-8")
    run(["git", "init", "-q"], root)
    run(["dvc", "init", "-q"], root)
    run(["dvc", "config", "core.analytics", "false"], root)
    run(["dvc", "repro"], root)
    return root


SLOW_DIRS = ("e2e", "spark")
# Session fixtures that run the whole pipeline once (about 4 minutes on 2 cores).
SLOW_FIXTURES = frozenset({"project", "second_run"})


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark the slow tier: end-to-end folders and tests that need the pipeline's outputs."""
    for item in items:
        parts = Path(str(item.fspath)).relative_to(REPO / "tests").parts
        if parts[0] in SLOW_DIRS or SLOW_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)
        if parts[0] == "spark":
            item.add_marker(pytest.mark.spark)
