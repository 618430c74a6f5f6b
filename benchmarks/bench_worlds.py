"""A sweep of worlds: refundguard against a plain LightGBM on exports it has never seen.

Our users run refundguard on their own exports, which look nothing like our simulator.
This benchmark stands in for them with several simulated worlds that differ in seed,
history before the export, export length, label delay and coverage, sleeper abusers,
closed accounts, offices that share addresses, seasonality and growth. For each world it
does what a user does:

1. simulate the world, then cut its export at a date T: only what was known before T
   (a refund resolved later reads pending, later labels do not exist);
2. copy this repository into a fresh project folder, point ``data.input_dir`` at the
   export (no truth file, no simulate stage) and run ``dvc repro`` there;
3. score every active buyer not yet labeled as of T with ``refundguard score``;
4. judge the scores against the hidden truth: a buyer is an abuser at T when their
   abuse had started before T.

The plain baseline is a LightGBM with default parameters on about a dozen basic refund
features (``evaluate.PLAIN_FEATURES``), trained on the same snapshot rows the shipped
model was (every cutoff of the project, and the known abusers' weighted rows when
``train.known_abusers`` is positive), and scored on the same buyers at T from the same
feature code. The target: refundguard beats it on AUC and AP in every world.

    .venv/bin/python benchmarks/bench_worlds.py                  # all worlds
    .venv/bin/python benchmarks/bench_worlds.py --worlds young   # one
    .venv/bin/python benchmarks/bench_worlds.py --variant before # the pre-#11 settings

Results go to benchmarks/results/worlds[_<variant>].json; the projects are kept under
benchmarks/.worlds/ (ignored by git) for inspection.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
import yaml
from sklearn.metrics import average_precision_score, roc_auc_score

from refundguard.config import SimulateParams, load_params
from refundguard.contract.vocabulary import HONEST_SEGMENT, LOOKALIKE_SEGMENTS
from refundguard.features.build import compute_features, load_validated
from refundguard.features.catalog import build_catalog
from refundguard.features.events import prepare_events
from refundguard.sim.simulate import export_as_of, simulate_world, write_world
from refundguard.sim.worlds import DEFAULT_WORLD
from refundguard.sim.worlds import WORLDS as SIM_WORLDS

REPO = Path(__file__).resolve().parents[1]
WORK = REPO / "benchmarks" / ".worlds"
RESULTS = REPO / "benchmarks" / "results"

# Each world's export ends at T = start + days; the simulation runs EXTRA days past T so
# that the world goes on after the export (labels and outcomes T does not know yet).
EXTRA_DAYS = 90
# The sweep's worlds are the simulator's named worlds (refundguard.sim.worlds), all but
# the default one.
WORLDS = {k: dict(v) for k, v in SIM_WORLDS.items() if k != DEFAULT_WORLD}
# The pipeline settings every world runs with (a user's choices, not the world's).
PROJECT_PARAMS: dict[str, dict[str, Any]] = {
    "train": {"n_test_cutoffs": 1},
    "evaluate": {"ablation": False},
}
# "current" runs this working tree; "before" runs the code and params of git revision
# BEFORE_REV (the last one before issue 11's changes) in the same worlds.
VARIANTS = ("current", "before")
BEFORE_REV = "86ac7ea"


def _merge(raw: dict[str, Any], extra: dict[str, dict[str, Any]]) -> None:
    for block, values in extra.items():
        if block in raw:
            raw.setdefault(block, {}).update(values)


def make_export(name: str, knobs: dict[str, Any], n_buyers: int, out: Path) -> pd.Timestamp:
    """Simulate a world and write its export as of T; return T (naive local)."""
    knobs = dict(knobs)
    seed = int(knobs.pop("seed"))
    days = int(knobs.pop("days"))
    sim = SimulateParams(
        **{
            **{k: tuple(v) if isinstance(v, list) else v for k, v in knobs.items()},
            "n_buyers": n_buyers,
            "days": days + EXTRA_DAYS,
            "start": "2023-01-01",
        }
    )
    world = simulate_world(sim, seed=seed)
    as_of = pd.Timestamp("2023-01-01") + pd.Timedelta(days=days)
    cut = export_as_of(world, as_of)
    out.mkdir(parents=True, exist_ok=True)
    write_world(cut, out, "parquet")
    # The user has no truth: keep it beside the project, not in it.
    (out / "truth.parquet").replace(out.parents[2] / "truth.parquet")
    return as_of


def make_project(folder: Path, variant: str) -> None:
    """A fresh copy of this repository's files, as a user's clone."""
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    if variant == "before":
        archive = subprocess.run(["git", "archive", BEFORE_REV], cwd=REPO, check=True,
                                 capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(folder)], input=archive, check=True)
    else:
        files = subprocess.run(
            ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
            cwd=REPO, check=True, capture_output=True, text=True,
        ).stdout.split()
        for rel in files:
            src = REPO / rel
            if src.is_file():
                dst = folder / rel
                dst.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, dst)
    for extra in ("benchmarks", "tests", "notebooks", "reports", "data", "models"):
        if (folder / extra).is_dir() and extra not in ("data", "models", "reports"):
            shutil.rmtree(folder / extra)
    raw = yaml.safe_load((folder / "params.yaml").read_text(encoding="utf-8"))
    raw["data"].update(input_dir="data/export", truth_file=None)
    raw["simulate"]["worlds"] = []
    _merge(raw, PROJECT_PARAMS)
    (folder / "params.yaml").write_text(yaml.safe_dump(raw, allow_unicode=True), "utf-8")
    (folder / "dvc.lock").unlink(missing_ok=True)
    subprocess.run(["git", "init", "-q"], cwd=folder, check=True)


def _env(folder: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}:{env.get('PATH', '')}"
    # The project's own copy of the code goes before the installed package, so that a
    # sweep measures the code it copied even while the working tree changes.
    env["PYTHONPATH"] = str(folder / "src")
    env["REFUNDGUARD_ROOT"] = str(folder)
    env["MLFLOW_TRACKING_URI"] = f"sqlite:///{folder / 'mlflow.db'}"
    env["REFUNDGUARD_QUIET"] = "1"
    return env


def _run(cmd: list[str], folder: Path) -> float:
    began = time.monotonic()
    done = subprocess.run(cmd, cwd=folder, env=_env(folder), capture_output=True, text=True)
    if done.returncode != 0:
        sys.stderr.write(done.stdout[-4000:] + done.stderr[-4000:])
        raise SystemExit(f"{' '.join(cmd)} failed in {folder}")
    return time.monotonic() - began


def scored_buyers(folder: Path, as_of: pd.Timestamp, active_days: int) -> list[str]:
    """Active buyers (an order in the active window before T) with no abuser label."""
    tables = load_validated(folder / "data" / "validated")
    tz = load_params(folder / "params.yaml").base.timezone
    t = as_of.tz_localize(tz).tz_convert("UTC")
    orders = tables["orders"]
    recent = orders[orders["created_at"] >= t - pd.Timedelta(days=active_days)]
    labeled = set(tables["labels"].loc[tables["labels"]["label"] == 1, "buyer_id"])
    return sorted(set(recent["buyer_id"]) - labeled)


def plain_baseline(folder: Path, buyers: list[str], as_of: pd.Timestamp) -> np.ndarray:
    """Default LightGBM on the basic features, trained on the project's snapshot rows."""
    from refundguard.features.build import known_abuser_rows
    from refundguard.model.evaluation import PLAIN_FEATURES
    from refundguard.model.train import WEIGHT_COLUMN, with_known

    params = load_params(folder / "params.yaml")
    features_dir = folder / "data" / "features"
    # The same rows the shipped model fitted on: with train.known_abusers "positive",
    # the known abusers' rows too, with the same weights.
    # (A project of older code has no such table.)
    has_known = (features_dir / "known_abusers.parquet").is_file()
    snaps = with_known(
        pd.read_parquet(features_dir / "snapshots.parquet"),
        known_abuser_rows(features_dir, params.train.known_abusers) if has_known else None,
    )
    features = [f for f in PLAIN_FEATURES if f in snaps.columns]
    booster = lgb.train(
        {"objective": "binary", "seed": params.base.seed, "deterministic": True,
         "num_threads": 2, "verbosity": -1},
        lgb.Dataset(snaps[features].to_numpy(dtype="float64"), label=snaps["target"],
                    weight=snaps[WEIGHT_COLUMN] if WEIGHT_COLUMN in snaps.columns else None),
    )
    tables = load_validated(folder / "data" / "validated")
    sentiment_file = folder / "data" / "sentiment" / "review_sentiment.parquet"
    events = prepare_events(
        tables["orders"], tables["refunds"], tables["reviews"], tables["buyers"],
        pd.read_parquet(sentiment_file) if sentiment_file.exists() else None,
        labels=tables["labels"], timezone=params.base.timezone,
    )
    t = as_of.tz_localize(params.base.timezone)
    feats = compute_features(events, t, build_catalog(params.features), buyer_ids=buyers)
    return np.asarray(booster.predict(feats[features].to_numpy(dtype="float64")))


def judge(truth: pd.DataFrame, buyers: list[str], as_of: pd.Timestamp) -> np.ndarray:
    """1 for buyers whose abuse had started before T."""
    t = truth.set_index("buyer_id").reindex(buyers)
    start = pd.to_datetime(t["abuse_start"])
    return (t["is_abuser"].fillna(False).to_numpy(dtype=bool)
            & (start < as_of).fillna(False).to_numpy(dtype=bool)).astype(int)


# Issue 14's yardstick: extortion reviewers caught at the flag rate where 1% of the honest
# (not abusing at T) buyers are flagged, and the picky reviewers (honest, harsh reviews)
# flagged at that same threshold.
MAX_FPR = 0.01


def segment_rates(
    truth: pd.DataFrame, buyers: list[str], y: np.ndarray, score: np.ndarray
) -> dict[str, float]:
    """Recall of each abuser segment and flag rate of each honest one, at 1% FPR."""
    by_buyer = truth.set_index("buyer_id").reindex(buyers)
    segment = by_buyer["segment"].fillna(HONEST_SEGMENT).to_numpy()
    threshold = float(np.quantile(score[y == 0], 1 - MAX_FPR))
    flagged = score > threshold
    out: dict[str, float] = {}
    for name in sorted(set(segment)):
        honest = name in (*LOOKALIKE_SEGMENTS, HONEST_SEGMENT)
        mine = (segment == name) & (y == (0 if honest else 1))
        if mine.sum() > 0:
            out[name] = float(flagged[mine].mean())
    return out


def run_world(name: str, n_buyers: int, variant: str) -> dict[str, Any]:
    base = WORK / variant / name
    export = base / "project" / "data" / "export"
    project = base / "project"
    make_project(project, variant)
    began = time.monotonic()
    as_of = make_export(name, WORLDS[name], n_buyers, export)
    repro_s = _run(["dvc", "repro", "--quiet"], project)
    params = load_params(project / "params.yaml")
    buyers = scored_buyers(project, as_of, params.features.active_days)
    pd.DataFrame({"buyer_id": buyers}).to_csv(base / "buyers.csv", index=False)
    score_s = _run(
        ["refundguard", "score", "--model", "models/scorer", "--data", "data/export",
         "--buyers", str(base / "buyers.csv"), "--as-of", as_of.date().isoformat(),
         "--out", str(base / "scores.parquet")],
        project,
    )
    scores = pd.read_parquet(base / "scores.parquet").set_index("buyer_id").reindex(buyers)
    truth = pd.read_parquet(base / "truth.parquet")
    y = judge(truth, buyers, as_of)
    ours = scores["probability"].to_numpy(dtype="float64")
    plain = plain_baseline(project, buyers, as_of)
    training = json.loads((project / "models" / "model" / "training.json").read_text())
    out = {
        "world": name,
        "variant": variant,
        "knobs": WORLDS[name],
        "as_of": as_of.date().isoformat(),
        "buyers_scored": len(buyers),
        "abusers_at_T": int(y.sum()),
        "horizon_days": training.get("horizon_days"),
        "dropped_features": training.get("dropped_features", []),
        "ships": training.get("ships", "holdout"),
        "refundguard": {"auc": float(roc_auc_score(y, ours)),
                        "ap": float(average_precision_score(y, ours))},
        "plain": {"auc": float(roc_auc_score(y, plain)),
                  "ap": float(average_precision_score(y, plain))},
        "seconds": {"repro": round(repro_s, 1), "score": round(score_s, 1),
                    "total": round(time.monotonic() - began, 1)},
    }
    ours_rates, plain_rates = (segment_rates(truth, buyers, y, ours),
                               segment_rates(truth, buyers, y, plain))
    out["at_1pct_fpr"] = {"refundguard": ours_rates, "plain": plain_rates}
    out["extortion_recall_gain"] = (
        ours_rates.get("extortion_reviewer", 0.0) - plain_rates.get("extortion_reviewer", 0.0)
    )
    out["beats_plain"] = bool(out["refundguard"]["auc"] > out["plain"]["auc"]
                              and out["refundguard"]["ap"] > out["plain"]["ap"])
    return out


def extortion_table(rows: list[dict[str, Any]]) -> str:
    """Issue 14's table: extortion reviewers caught and picky reviewers flagged at 1% FPR."""
    lines = [
        "| world | extortion reviewers: refundguard | plain | gain | picky reviewers flagged: "
        "refundguard | plain |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        ours, plain = r["at_1pct_fpr"]["refundguard"], r["at_1pct_fpr"]["plain"]
        lines.append(
            f"| {r['world']} | {ours.get('extortion_reviewer', 0):.3f} "
            f"| {plain.get('extortion_reviewer', 0):.3f} | {r['extortion_recall_gain']:+.3f} "
            f"| {ours.get('picky_reviewer', 0):.3f} | {plain.get('picky_reviewer', 0):.3f} |"
        )
    return "\n".join(lines)


def table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| world | T | buyers | abusers | H | refundguard AUC | plain AUC | refundguard AP "
        "| plain AP | beats plain |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['world']} | {r['as_of']} | {r['buyers_scored']:,} | {r['abusers_at_T']:,} "
            f"| {r['horizon_days']} | {r['refundguard']['auc']:.3f} | {r['plain']['auc']:.3f} "
            f"| {r['refundguard']['ap']:.3f} | {r['plain']['ap']:.3f} "
            f"| {'yes' if r['beats_plain'] else 'NO'} |"
        )
    return "\n".join(lines)


def combined_table() -> str:
    """Markdown table of results/worlds.json, with results/worlds_before.json beside it."""
    now = {r["world"]: r for r in json.loads((RESULTS / "worlds.json").read_text())}
    path = RESULTS / "worlds_before.json"
    before = {r["world"]: r for r in json.loads(path.read_text())} if path.exists() else {}
    lines = [
        "| world | T | buyers scored | abusers at T | H (days) | refundguard AUC | plain AUC "
        "| refundguard AP | plain AP | beats plain | before #11: AUC / AP |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name in WORLDS:
        if name not in now:
            continue
        r, b = now[name], before.get(name)
        old = (f"{b['refundguard']['auc']:.3f} / {b['refundguard']['ap']:.3f}" if b else "")
        lines.append(
            f"| {name} | {r['as_of']} | {r['buyers_scored']:,} | {r['abusers_at_T']:,} "
            f"| {r['horizon_days']} | **{r['refundguard']['auc']:.3f}** "
            f"| {r['plain']['auc']:.3f} | **{r['refundguard']['ap']:.3f}** "
            f"| {r['plain']['ap']:.3f} | {'yes' if r['beats_plain'] else 'NO'} | {old} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worlds", nargs="*", default=list(WORLDS), choices=list(WORLDS))
    parser.add_argument("--buyers", type=int, default=20_000)
    parser.add_argument("--variant", default="current", choices=VARIANTS)
    parser.add_argument("--table", action="store_true",
                        help="only print the table of the recorded results")
    args = parser.parse_args()
    if args.table:
        print(combined_table())
        recorded = json.loads((RESULTS / "worlds.json").read_text())
        print(extortion_table([r for r in recorded if "at_1pct_fpr" in r]))
        return
    rows = []
    for name in args.worlds:
        row = run_world(name, args.buyers, args.variant)
        rows.append(row)
        print(json.dumps(row), flush=True)
    suffix = "" if args.variant == "current" else f"_{args.variant}"
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"worlds{suffix}.json"
    previous = json.loads(path.read_text()) if path.exists() else []
    done = {r["world"] for r in rows}
    merged = [r for r in previous if r["world"] not in done] + rows
    merged.sort(key=lambda r: list(WORLDS).index(r["world"]))
    path.write_text(json.dumps(merged, indent=2) + "\n")
    print(table(merged))
    print(extortion_table([r for r in merged if "at_1pct_fpr" in r]))


if __name__ == "__main__":
    main()
