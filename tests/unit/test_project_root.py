"""A project never writes outside its folder.

The root is the folder of the working directory (or the nearest one above it) that holds
params.yaml, so two copies of a project sharing one virtualenv each keep their own data,
models and MLflow store, and neither touches the checkout that holds the installed code.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml
from tests.fixtures import REPO, VENV_BIN, tiny_params_dict

from refundguard import paths
from refundguard.errors import ConfigError
from refundguard.model import tracking

Snapshot = dict[str, tuple[int, int]]
# Stages run outside a project, one per way of refusing: the project guard (validate) and
# the params loader (simulate). The heavier stages import for seconds before either.
REFUSING = ("simulate", "validate")
# What the pipeline writes at a project's root; the code's checkout must keep all of it.
OUTPUTS = ("data", "models", "reports", "mlartifacts", "mlruns", "mlflow.db")

PRINT_LOCATIONS = (
    "import json; from refundguard import paths; from refundguard.model import tracking; "
    "uri = tracking.tracking_uri(); "
    "print(json.dumps({'root': str(paths.PROJECT_ROOT), 'found': paths.PROJECT_FOUND, "
    "'uri': uri, 'artifacts': tracking.artifact_root(uri), "
    "'validated': str(paths.VALIDATED_DIR)}))"
)


def clean_env() -> dict[str, str]:
    """The user's environment without any root or MLflow store chosen for them."""
    env = {k: v for k, v in os.environ.items()
           if k != paths.ROOT_ENV and not k.startswith("MLFLOW_")}
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    return env


def refundguard(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(VENV_BIN / "refundguard"), *args], cwd=cwd, env=clean_env(),
                          capture_output=True, text=True, timeout=300, check=False)


def snapshot(folder: Path, only: tuple[str, ...] | None = None) -> Snapshot:
    """Every file under a folder (or under some of its entries): path -> (mtime, size)."""
    tops = [folder / name for name in only] if only is not None else [folder]
    out: Snapshot = {}
    for top in tops:
        if top.is_file():
            st = top.stat()
            out[str(top)] = (st.st_mtime_ns, st.st_size)
        for path in top.rglob("*") if top.is_dir() else []:
            st = path.lstat()
            out[str(path)] = (st.st_mtime_ns, st.st_size)
    return out


def _third_party_warning(line: str) -> bool:
    """A library's import-time warning (its "file:line: XWarning:" line or source line).

    Not refundguard's output: pandera imports pyspark whenever it is installed, and
    pyspark warns about pandas 3 on import.
    """
    return ("site-packages" in line and "Warning:" in line) or line.startswith("  ")


def make_project(folder: Path) -> Path:
    """A project folder holding only a tiny world's params.yaml (input_dir relative)."""
    raw = tiny_params_dict()
    raw["simulate"].update(n_buyers=300, days=200)
    raw["data"].update(input_dir="data/simulated", truth_file="data/simulated/truth.parquet")
    folder.mkdir(parents=True)
    (folder / "params.yaml").write_text(yaml.safe_dump(raw, allow_unicode=True),
                                        encoding="utf-8")
    (folder / "notes").mkdir()
    return folder


def test_two_copies_each_write_only_inside_their_own_folder(tmp_path: Path) -> None:
    copies = [make_project(tmp_path / "a"), make_project(tmp_path / "b")]
    checkout_before = snapshot(REPO, OUTPUTS)
    for i, here in enumerate(copies):
        other = copies[1 - i]
        mine_before, other_before = snapshot(here), snapshot(other)
        sim = refundguard(["simulate"], here)
        assert sim.returncode == 0, sim.stderr
        # From a subfolder too: the root is found by walking up, as git and DVC do.
        val = refundguard(["validate"], here / "notes")
        assert val.returncode == 0, val.stderr
        where = subprocess.run([sys.executable, "-c", PRINT_LOCATIONS], cwd=here / "notes",
                               env=clean_env(), capture_output=True, text=True, timeout=120,
                               check=True)
        loc = json.loads(where.stdout)
        assert loc["found"] is True
        assert Path(loc["root"]) == here.resolve()
        assert loc["uri"] == f"sqlite:///{here.resolve() / 'mlflow.db'}"
        assert loc["artifacts"] == (here.resolve() / "mlartifacts").as_uri()
        assert Path(loc["validated"]) == here.resolve() / "data" / "validated"

        mine_after = snapshot(here)
        changed = {p for p in mine_after if mine_before.get(p) != mine_after[p]}
        assert changed, "the stages wrote nothing"
        assert all(Path(p).is_relative_to(here / "data") for p in changed), sorted(changed)
        assert (here / "data" / "simulated" / "orders.parquet").is_file()
        assert (here / "data" / "validated" / "quarantine.csv").is_file()
        assert not (here / "notes" / "data").exists()
        assert snapshot(other) == other_before, f"running in {here.name} touched {other.name}"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b"]
    assert snapshot(REPO, OUTPUTS) == checkout_before, "the code's checkout was written to"


def test_stages_refuse_to_run_outside_a_project(tmp_path: Path) -> None:
    nowhere = tmp_path / "nowhere"
    nowhere.mkdir()
    assert paths.find_root(nowhere, {}) is None, (
        f"a params.yaml above {nowhere} makes this test meaningless: remove it"
    )
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = dict(zip(REFUSING, pool.map(lambda s: refundguard([s], nowhere), REFUSING),
                           strict=True))
    for stage, proc in results.items():
        assert proc.returncode == 2, (stage, proc.stderr)
        assert "Traceback" not in proc.stderr
        lines = [line for line in proc.stderr.strip().splitlines()
                 if not _third_party_warning(line)]
        assert len(lines) == 1, (stage, proc.stderr)
        assert lines[0].startswith("refundguard: error: "), (stage, lines)
        assert "params.yaml" in lines[0], (stage, lines)
    assert "REFUNDGUARD_ROOT" in results["validate"].stderr
    assert list(nowhere.iterdir()) == [], "a refused command wrote files"


def test_find_root_walks_up_to_the_nearest_params_yaml(tmp_path: Path) -> None:
    outer = make_project(tmp_path / "outer")
    inner = make_project(outer / "inner")
    deep = inner / "notes" / "deeper"
    deep.mkdir()
    assert paths.find_root(deep, {}) == inner.resolve()
    assert paths.find_root(outer / "notes", {}) == outer.resolve()
    assert paths.find_root(outer, {}) == outer.resolve()


def test_refundguard_root_overrides_the_search(tmp_path: Path) -> None:
    project = make_project(tmp_path / "p")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    assert paths.find_root(project, {paths.ROOT_ENV: str(elsewhere)}) == elsewhere.resolve()
    assert paths.find_root(project, {paths.ROOT_ENV: ""}) == project.resolve()


def test_require_project_outside_one(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(paths, "PROJECT_FOUND", False)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match=r"no params\.yaml in .* or any folder above it"):
        paths.require_project()
    with pytest.raises(ConfigError):
        paths.require_project(paths.PARAMS_FILE)
    # A params file the user names explicitly is enough.
    paths.require_project(tmp_path / "my.yaml")
    monkeypatch.setattr(paths, "PROJECT_FOUND", True)
    paths.require_project()


def test_a_store_whose_artifacts_live_in_another_folder_is_refused(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    tracking.check_artifact_location(uri, "refundguard", (tmp_path / "mlartifacts").as_uri())
    # A copied store still names the original project's artifacts: runs would write there.
    with pytest.raises(ConfigError, match="copied or moved"):
        tracking.check_artifact_location(uri, "refundguard",
                                         (tmp_path / "other" / "mlartifacts").as_uri())
    # Remote artifact stores are the user's choice.
    tracking.check_artifact_location(uri, "refundguard", "s3://bucket/refundguard")
