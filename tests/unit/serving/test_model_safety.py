"""Loading models safely: a model for another feature catalog, or a damaged model folder,
gives one clear error (ModelError), never a traceback or a silently wrong scorer.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from tests.fixtures import REPO, project_env
from typer.testing import CliRunner

from refundguard import Scorer
from refundguard.cli import app
from refundguard.errors import ModelError

runner = CliRunner()
Damage = Callable[[Path], None]


@pytest.fixture
def scorer_copy(project: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "scorer"
    shutil.copytree(project / "models/scorer", copy)
    return copy


def edit_json(name: str, change: Callable[[dict[str, object]], object]) -> Damage:
    def damage(folder: Path) -> None:
        path = folder / "artifacts" / name
        data = json.loads(path.read_text(encoding="utf-8"))
        result = change(data)
        path.write_text(json.dumps(data if result is None else result), encoding="utf-8")

    return damage


def write_file(name: str, content: bytes) -> Damage:
    def damage(folder: Path) -> None:
        (folder / "artifacts" / name).write_bytes(content)

    return damage


def remove(name: str) -> Damage:
    def damage(folder: Path) -> None:
        (folder / "artifacts" / name).unlink()

    return damage


def truncate_model(folder: Path) -> None:
    path = folder / "artifacts/model.txt"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])


def flip_bytes(folder: Path) -> None:
    path = folder / "artifacts/model.txt"
    data = bytearray(path.read_bytes())
    for i in range(200, len(data), 97):
        data[i] = 0xFF
    path.write_bytes(bytes(data))


def other_windows(data: dict[str, object]) -> None:
    """A model trained with other feature windows: another catalog than it claims."""
    fp = data["feature_params"]
    assert isinstance(fp, dict)
    fp["windows_days"] = [7, 14]


CATALOG = [
    pytest.param(edit_json("scorer.json", lambda d: d.update(catalog_version="0" * 12)),
                 id="other-catalog-version"),
    pytest.param(edit_json("scorer.json", other_windows), id="feature-params-changed"),
]

CORRUPT = [
    pytest.param(write_file("model.txt", b""), None, id="empty-model"),
    pytest.param(write_file("model.txt", bytes(range(256)) * 40), None, id="random-bytes-model"),
    pytest.param(flip_bytes, None, id="flipped-bytes-model"),
    pytest.param(remove("model.txt"), "cannot load scorer", id="missing-model"),
    pytest.param(write_file("scorer.json", b"{not json"), "cannot load scorer",
                 id="scorer-json-not-json"),
    pytest.param(write_file("scorer.json", b"[1, 2]"), None, id="scorer-json-a-list"),
    pytest.param(edit_json("scorer.json", lambda d: d.pop("features") and None),
                 "cannot load scorer",
                 id="scorer-json-without-features"),
    pytest.param(edit_json("scorer.json", lambda d: d.update(format="other/9")),
                 "unsupported scorer format", id="other-format"),
    pytest.param(edit_json("scorer.json", lambda d: d.update(features=["a", "b"])),
                 "feature list", id="feature-list-mismatch"),
    pytest.param(write_file("calibration.json", b"\x00\x01"), None, id="calibration-garbage"),
    pytest.param(edit_json("calibration.json", lambda d: {"method": "magic"}), None,
                 id="calibration-unknown-method"),
    pytest.param(remove("calibration.json"), "cannot load scorer", id="missing-calibration"),
    pytest.param(lambda f: (f / "MLmodel").unlink(), "not an exported refundguard scorer",
                 id="no-MLmodel"),
]


@pytest.mark.parametrize("damage", CATALOG)
def test_model_for_another_feature_catalog_is_refused(scorer_copy: Path,
                                                      damage: Damage) -> None:
    damage(scorer_copy)
    with pytest.raises(ModelError, match="feature catalog") as info:
        Scorer.load(scorer_copy)
    assert "retrain" in str(info.value)


@pytest.mark.parametrize(("damage", "message"), CORRUPT)
def test_corrupted_model_folder_is_refused(scorer_copy: Path, damage: Damage,
                                           message: str | None) -> None:
    damage(scorer_copy)
    with pytest.raises(ModelError, match=message):
        Scorer.load(scorer_copy)


@pytest.mark.parametrize("damage", [
    CATALOG[0],
    pytest.param(write_file("model.txt", b"tree\nversion=v4\n"), id="model-without-trees"),
    pytest.param(write_file("scorer.json", b"{not json"), id="scorer-json-not-json"),
])
def test_cli_reports_a_bad_model_in_one_line(scorer_copy: Path, tmp_path: Path,
                                             damage: Damage) -> None:
    damage(scorer_copy)
    (tmp_path / "f.parquet").write_bytes(b"")
    result = runner.invoke(app, ["score", "--model", str(scorer_copy), "--features",
                                 str(tmp_path / "f.parquet"), "--out", str(tmp_path / "s.csv")])
    assert result.exit_code == 2
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("refundguard: error:"), result.stderr
    assert not (tmp_path / "s.csv").exists()


def change_one_digit(folder: Path) -> None:
    """One leaf value altered: the file still parses, but the model is not the exported one."""
    path = folder / "artifacts/model.txt"
    text = path.read_text(encoding="utf-8")
    at = text.index("leaf_value=") + len("leaf_value=") + 3
    digit = "7" if text[at] != "7" else "3"
    path.write_text(text[:at] + digit + text[at + 1 :], encoding="utf-8")


LOAD = (
    "import sys\n"
    "from refundguard import Scorer\n"
    "from refundguard.errors import ModelError\n"
    "try:\n"
    "    Scorer.load(sys.argv[1])\n"
    "except ModelError as exc:\n"
    "    print('ModelError:', exc)\n"
    "else:\n"
    "    print('loaded')\n"
)


@pytest.mark.parametrize(
    "damage",
    [pytest.param(truncate_model, id="truncated-to-a-third"),
     pytest.param(lambda f: (f / "artifacts/model.txt").write_bytes(
         (f / "artifacts/model.txt").read_bytes()[:-200]), id="last-bytes-missing"),
     pytest.param(change_one_digit, id="one-digit-changed")],
)
def test_altered_model_text_is_refused_without_crashing(project: Path, scorer_copy: Path,
                                                        damage: Damage) -> None:
    """LightGBM itself crashes (SIGSEGV) on a truncated model file, and silently loads
    one with a changed number; the scorer must refuse both before LightGBM parses them.

    Run in a child process, so that a crash fails this test instead of killing pytest.
    """
    import subprocess
    import sys

    damage(scorer_copy)
    proc = subprocess.run([sys.executable, "-c", LOAD, str(scorer_copy)], cwd=project,
                          capture_output=True, text=True, errors="replace", timeout=300,
                          check=False)
    assert proc.returncode == 0, f"the loader crashed ({proc.returncode}): {proc.stderr[-500:]}"
    assert proc.stdout.startswith("ModelError:"), proc.stdout


def test_cli_bad_model_in_a_fresh_process_has_no_traceback(project: Path,
                                                           scorer_copy: Path) -> None:
    import subprocess

    truncate_model(scorer_copy)
    proc = subprocess.run(
        ["refundguard", "score", "--model", str(scorer_copy), "--features",
         str(project / "data/features/snapshots.parquet"), "--out",
         str(scorer_copy.parent / "s.csv")],
        cwd=project, env=project_env(project), capture_output=True, text=True,
        errors="replace", timeout=300, check=False,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().startswith("refundguard: error:")


def test_intact_copy_loads(scorer_copy: Path) -> None:
    """Guard for the tests above: the copy itself is a good scorer."""
    assert Scorer.load(scorer_copy).features


def test_readme_warns_that_pyfunc_models_run_code() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("## Loading models safely"):]
    section = section[: section.index("\n## ", 3)]
    assert "Load only models you trust" in section
    assert "mlflow.pyfunc.load_model" in section and "Scorer.load" in section
