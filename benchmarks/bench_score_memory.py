"""Scoring a million buyers from a feature file: wall time and peak memory (streamed).

Step 1 (own processes, not measured): run the pipeline on a small simulated world in a
temporary folder (or take ``--model`` and ``--snapshots`` from an earlier run), then
synthesise N buyers' feature rows by sampling the latest snapshot's rows with
replacement and perturbing them (values times a log-normal factor, counts rounded,
shares kept in [0, 1], missing values kept), written as Parquet in row groups of 100,000.
Step 2 (own process per chunk size, measured): ``refundguard score --features ... --out
scores.parquet --chunk-size C``, the command a user runs; wall time includes its start-up,
peak RSS is that process's. Step 3 (own process, measured, unless ``--no-compare``): the
same rows scored in one piece (read the whole file, one ``Scorer.score`` call, write),
for contrast.

    .venv/bin/python benchmarks/bench_score_memory.py --buyers 1000000
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
VENV_BIN = Path(sys.executable).parent

MEASURE_CLI = """
import json, resource, subprocess, sys, time
t = time.perf_counter()
proc = subprocess.run(sys.argv[1:], capture_output=True, text=True)
wall = time.perf_counter() - t
if proc.returncode:
    sys.exit(proc.stderr[-3000:])
print(json.dumps({"wall_seconds": wall,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
                  "stdout": proc.stdout.strip()}))
"""

IN_ONE_PIECE = """
import json, resource, sys, time
import pandas as pd
from refundguard import Scorer
t = time.perf_counter()
scorer = Scorer.load(sys.argv[1])
frame = pd.read_parquet(sys.argv[2], columns=["buyer_id", *scorer.features])
scores = scorer.score(frame)
scores.to_parquet(sys.argv[3], index=False)
print(json.dumps({"wall_seconds": time.perf_counter() - t, "rows": len(scores),
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def small_world_params() -> dict[str, object]:
    """The repository's params.yaml, shrunk to a world the pipeline runs in a few minutes."""
    raw = yaml.safe_load((REPO / "params.yaml").read_text(encoding="utf-8"))
    raw["simulate"].update(n_buyers=1500, days=420, label_coverage=0.9)
    raw["base"].update(horizon_days=42, min_history_days=84, cutoff_step_days=28)
    raw["sentiment"].update(min_labeled_reviews=50, hash_bits=16)
    raw["train"].update(n_valid_cutoffs=1, n_test_cutoffs=1)
    if "tuning" in raw["train"]:
        raw["train"]["tuning"].update(n_trials=3, n_folds=2)
    raw["train"]["lightgbm"].update(num_boost_round=300, early_stopping_rounds=30,
                                    min_data_in_leaf=10)
    raw["evaluate"].update(ablation=False)
    return raw


def build_scorer(root: Path) -> tuple[Path, Path]:
    """Run simulate..export in ``root``; return the scorer folder and the snapshots file."""
    shutil.copytree(REPO / "src", root / "src",
                    ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    (root / "params.yaml").write_text(yaml.safe_dump(small_world_params(), allow_unicode=True),
                                      encoding="utf-8")
    env = {**os.environ, "REFUNDGUARD_ROOT": str(root),
           "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false"}
    for stage in ("simulate", "validate", "sentiment", "featurize", "train", "evaluate",
                  "export"):
        proc = subprocess.run([str(VENV_BIN / "refundguard"), stage], cwd=root, env=env,
                              capture_output=True, text=True, check=False)
        if proc.returncode:
            sys.exit(f"{stage} failed:\n{proc.stderr[-3000:]}")
    return root / "models/scorer", root / "data/features/snapshots.parquet"


def synthesise(snapshots: Path, features: list[str], n: int, out: Path, seed: int = 0) -> int:
    """N perturbed copies of the latest snapshot's rows, as a Parquet file."""
    snaps = pd.read_parquet(snapshots)
    base = snaps[snaps["cutoff"] == snaps["cutoff"].max()].reset_index(drop=True)
    rng = np.random.default_rng(seed)
    pick = rng.integers(0, len(base), size=n)
    columns: dict[str, object] = {"buyer_id": [f"S{i:07d}" for i in range(n)]}
    for name in features:
        src = base[name].to_numpy(dtype="float64")
        values = src[pick] * rng.lognormal(0.0, 0.15, size=n)
        finite = src[np.isfinite(src)]
        if finite.size and (finite >= 0).all() and (finite <= 1).all():
            values = np.clip(values, 0.0, 1.0)
        elif finite.size and np.allclose(finite, np.round(finite)):
            values = np.round(values)
        columns[name] = values
    pd.DataFrame(columns).to_parquet(out, index=False, row_group_size=100_000)
    return len(base)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--buyers", type=int, default=1_000_000)
    ap.add_argument("--chunk-sizes", type=int, nargs="+", default=[100_000, 20_000],
                    help="chunk sizes to measure, one run each (params default: 100,000)")
    ap.add_argument("--model", type=Path, help="an exported scorer (default: build one)")
    ap.add_argument("--snapshots", type=Path, help="snapshots.parquet to sample rows from")
    ap.add_argument("--no-compare", action="store_true", help="skip the in-one-piece run")
    args = ap.parse_args()
    env = {**os.environ, "OMP_NUM_THREADS": "2"}
    with tempfile.TemporaryDirectory(prefix="rg-score-") as tmp_name:
        tmp = Path(tmp_name)
        t = time.perf_counter()
        if args.model is None or args.snapshots is None:
            model, snapshots = build_scorer(tmp / "world")
        else:
            model, snapshots = args.model, args.snapshots
        from refundguard import Scorer

        features = list(Scorer.load(model).features)
        feats = tmp / "features.parquet"
        sampled_from = synthesise(snapshots, features, args.buyers, feats)
        prepare_seconds = time.perf_counter() - t
        streamed: dict[str, dict[str, object]] = {}
        for chunk in args.chunk_sizes:
            out = tmp / f"scores_{chunk}.parquet"
            cli = [str(VENV_BIN / "refundguard"), "score", "--model", str(model), "--features",
                   str(feats), "--out", str(out), "--chunk-size", str(chunk)]
            run = subprocess.run([sys.executable, "-c", MEASURE_CLI, *cli], env=env,
                                 capture_output=True, text=True, check=False)
            if run.returncode:
                sys.exit(run.stderr[-3000:])
            got = json.loads(run.stdout.strip().splitlines()[-1])
            tiers = pd.read_parquet(out, columns=["tier"])["tier"]
            assert len(tiers) == args.buyers, len(tiers)
            streamed[str(chunk)] = {
                "wall_seconds": got["wall_seconds"],
                "peak_rss_mb": got["peak_rss_mb"],
                "buyers_per_second": args.buyers / got["wall_seconds"],
                "cli_output": got["stdout"].replace(str(out), "scores.parquet"),
                "tiers": tiers.value_counts().to_dict(),
            }
            out.unlink()
        result: dict[str, object] = {
            "buyers": args.buyers,
            "features": len(features),
            "sampled_from_buyers": sampled_from,
            "feature_file_mb": feats.stat().st_size / 2**20,
            "streamed_by_chunk_size": streamed,
            "prepare_seconds": prepare_seconds,
            "target_peak_rss_mb": 4096,
            "cpus": os.cpu_count(),
            "command": f".venv/bin/python benchmarks/bench_score_memory.py --buyers {args.buyers}",
        }
        if not args.no_compare:
            whole = subprocess.run([sys.executable, "-c", IN_ONE_PIECE, str(model), str(feats),
                                    str(tmp / "whole.parquet")], env=env, capture_output=True,
                                   text=True, check=False)
            result["in_one_piece"] = (
                json.loads(whole.stdout.strip().splitlines()[-1]) if whole.returncode == 0
                else {"failed": whole.stderr[-500:]}
            )
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"score_memory_{args.buyers}.json"
    path.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
