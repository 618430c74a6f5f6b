"""Atomic outputs: a stage killed with SIGKILL leaves its previous output or none, never a
partial file; running it again completes.

The child processes run the real CLI commands. To make the moment of the kill certain
rather than a race, a small hook in the child pauses it at a chosen point (in the middle
of the computation, or with the new file fully written but not yet renamed) and writes a
marker file; the test then sends SIGKILL.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from tests.fixtures import project_env, run

HOOK = r"""
import os, sys, time
from pathlib import Path

marker, point, target, nth = Path(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4])
calls = [0]


def pause() -> None:
    marker.write_text("paused", encoding="utf-8")
    time.sleep(600)


if point == "rename":
    real_replace = os.replace

    def replace(src, dst, *args, **kwargs):
        if Path(dst).name == target:
            pause()
        return real_replace(src, dst, *args, **kwargs)

    os.replace = replace
elif point == "features":
    import refundguard.features.build as features

    real_compute = features.compute_features

    def compute(*args, **kwargs):
        calls[0] += 1
        if calls[0] == nth:
            pause()
        return real_compute(*args, **kwargs)

    features.compute_features = compute
elif point == "score":
    from refundguard.serving.scorer import Scorer

    real_score = Scorer.score

    def score(self, *args, **kwargs):
        calls[0] += 1
        if calls[0] == nth:
            pause()
        return real_score(self, *args, **kwargs)

    Scorer.score = score

from refundguard.cli import app

sys.argv = ["refundguard", *sys.argv[5:]]
app()
"""


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def kill_at(root: Path, point: str, target: str, nth: int, args: list[str]) -> None:
    """Run a CLI command in ``root``, pause it at ``point`` and SIGKILL it there."""
    marker = root / f"paused-{point}"
    marker.unlink(missing_ok=True)
    proc = subprocess.Popen(
        [sys.executable, "-c", HOOK, str(marker), point, target, str(nth), *args],
        cwd=root, env=project_env(root), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 300
    while not marker.exists():
        if proc.poll() is not None:
            raise AssertionError(f"finished before the pause point: {proc.stderr.read()!r}"
                                 if proc.stderr else "finished before the pause point")
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError("pause point not reached in 300 s")
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    if proc.stderr:
        proc.stderr.close()


def temporaries(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


@pytest.fixture
def featurize_root(project: Path, tmp_path: Path) -> Path:
    """A project folder with the validate and sentiment outputs, ready to featurize."""
    root = tmp_path / "proj"
    root.mkdir()
    shutil.copy(project / "params.yaml", root / "params.yaml")
    for rel in ("data/validated", "data/sentiment"):
        shutil.copytree(project / rel, root / rel)
    return root


def digest(folder: Path) -> dict[str, str]:
    """sha256 of every file under a folder (the review models are a subfolder), by path."""
    return {
        p.relative_to(folder).as_posix(): sha(p)
        for p in sorted(folder.rglob("*"))
        if p.is_file() and not p.name.endswith(".tmp")
    }


def test_featurize_killed_mid_computation_keeps_the_previous_output(
    project: Path, featurize_root: Path
) -> None:
    out = featurize_root / "data/features"
    shutil.copytree(project / "data/features", out)
    before = digest(out)
    kill_at(featurize_root, "features", "", 2, ["featurize"])
    assert digest(out) == before


def test_featurize_killed_before_the_rename_keeps_the_previous_output(
    project: Path, featurize_root: Path
) -> None:
    out = featurize_root / "data/features"
    shutil.copytree(project / "data/features", out)
    before = digest(out)
    kill_at(featurize_root, "rename", "snapshots.parquet", 1, ["featurize"])
    assert digest(out) == before
    # The killed run had written its whole file, under a temporary name only.
    assert len(temporaries(out)) == 1
    # Running again completes, gives the same bytes, and clears the leftover.
    run(["refundguard", "featurize"], featurize_root)
    assert digest(out) == before
    assert temporaries(out) == []


def test_featurize_killed_without_previous_output_leaves_none(featurize_root: Path) -> None:
    kill_at(featurize_root, "rename", "snapshots.parquet", 1, ["featurize"])
    out = featurize_root / "data/features"
    assert not (out / "snapshots.parquet").exists()
    assert not (out / "manifest.json").exists()


@pytest.fixture
def score_root(project: Path, tmp_path: Path) -> tuple[Path, Path]:
    root = tmp_path / "score"
    root.mkdir()
    feats = root / "features.parquet"
    snaps = pd.read_parquet(project / "data/features/snapshots.parquet")
    snaps.to_parquet(feats, index=False, row_group_size=500)
    return root, feats


@pytest.mark.parametrize(("suffix", "previous"), [(".parquet", True), (".csv", False)],
                         ids=["parquet-previous-output", "csv-no-output"])
def test_scoring_killed_mid_stream_leaves_previous_output_or_none(
    project: Path, score_root: tuple[Path, Path], suffix: str, previous: bool
) -> None:
    root, feats = score_root
    out = root / f"scores{suffix}"
    args = ["score", "--model", str(project / "models/scorer"), "--features", str(feats),
            "--out", str(out), "--chunk-size", "300"]
    if previous:
        out.write_bytes(b"the previous scores")
    # Paused at the third chunk: two chunks are already in the temporary file.
    kill_at(root, "score", "", 3, args)
    partial = temporaries(root)
    assert len(partial) == 1 and (root / partial[0]).stat().st_size > 0
    if not previous:
        assert not out.exists()
        return
    assert out.read_bytes() == b"the previous scores"
    run(["refundguard", *args], root)
    scores = pd.read_parquet(out)
    assert scores["buyer_id"].tolist() == pd.read_parquet(feats)["buyer_id"].tolist()
    assert temporaries(root) == []
