"""Scorer latency and throughput: Python API, pyfunc, REST and ONNX; 1 M-buyer batches.

Single-buyer latency (p50/p99 over many calls, one buyer per call, after warm-up):
``Scorer.score`` on one row, ``mlflow.pyfunc`` ``predict``, an HTTP round trip to
``mlflow models serve`` on localhost (one kept-alive connection), and onnxruntime plus
the spec's calibration and tier rule. Batch throughput on 1,000,000 feature rows
resampled (seeded) from the test cutoff's real snapshot: ``Scorer.score`` without and
with reasons, LightGBM's own ``Booster.predict`` on the same matrix as the reference,
and onnxruntime. Also records how far onnxmltools' float32 LightGBM conversion is from
LightGBM on the test window (why ``refundguard.serving.onnx`` writes float64 trees).

    .venv/bin/python benchmarks/bench_scorer.py --project /path/to/project
    .venv/bin/python benchmarks/bench_scorer.py --buyers 20000   # builds a project first

``--project`` is a folder where the pipeline has run (models/scorer, models/onnx,
data/features). Without it, the pipeline runs on a simulated world of ``--buyers`` buyers
(the repository's params.yaml otherwise) in a temporary folder. Results go to
benchmarks/results/scorer_<buyers>.json.
"""

from __future__ import annotations

import argparse
import cProfile
import http.client
import io
import json
import math
import os
import platform
import pstats
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
BIN = Path(sys.executable).parent
STAGES = ("simulate", "validate", "sentiment", "featurize", "train", "evaluate", "export")


def build_project(root: Path, buyers: int, trials: int | None) -> None:
    params = yaml.safe_load((REPO / "params.yaml").read_text(encoding="utf-8"))
    params["simulate"]["n_buyers"] = buyers
    params["evaluate"]["ablation"] = False
    if trials is not None:
        params["train"]["tuning"]["n_trials"] = trials
    (root / "params.yaml").write_text(yaml.safe_dump(params, allow_unicode=True), encoding="utf-8")
    env = {**os.environ, "REFUNDGUARD_ROOT": str(root),
           "MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlflow.db'}",
           "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false"}
    for stage in STAGES:
        t = time.perf_counter()
        proc = subprocess.run([str(BIN / "refundguard"), stage], cwd=root, env=env,
                              capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            sys.exit(f"stage {stage} failed:\n{proc.stderr[-3000:]}")
        print(f"built: {stage} {time.perf_counter() - t:.0f} s", flush=True)


def summary(ns: list[int]) -> dict[str, float]:
    ms = np.asarray(ns, dtype="float64") / 1e6
    return {"p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99)),
            "mean_ms": float(ms.mean()), "calls": len(ns)}


def latency(call: Callable[[int], object], calls: int, warmup: int = 30) -> dict[str, float]:
    for i in range(warmup):
        call(i)
    times = []
    for i in range(calls):
        t = time.perf_counter_ns()
        call(i)
        times.append(time.perf_counter_ns() - t)
    return summary(times)


def best_rate(call: Callable[[], object], rows: int, repeats: int) -> dict[str, float]:
    seconds = []
    for _ in range(repeats):
        t = time.perf_counter()
        call()
        seconds.append(time.perf_counter() - t)
    return {"buyers_per_s": rows / min(seconds), "best_s": min(seconds),
            "median_s": float(np.median(seconds)), "runs": repeats}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cells(frame: pd.DataFrame) -> list[list[Any]]:
    return [[None if isinstance(v, float) and math.isnan(v) else v for v in row]
            for row in frame.astype(object).to_numpy().tolist()]


def rest_latency(root: Path, rows: pd.DataFrame, calls: int) -> dict[str, float]:
    port = free_port()
    env = {**os.environ, "REFUNDGUARD_ROOT": str(root),
           "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
           "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false"}
    proc = subprocess.Popen(
        [str(BIN / "mlflow"), "models", "serve", "-m", str(root / "models/scorer"),
         "--env-manager", "local", "-p", str(port), "-h", "127.0.0.1"],
        cwd=root, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        t0 = time.monotonic()
        while True:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                conn.request("GET", "/ping")
                if conn.getresponse().status == 200:
                    break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() - t0 > 180:
                raise RuntimeError("the REST server did not start")
            time.sleep(0.25)
        startup = time.monotonic() - t0
        bodies = [json.dumps({"dataframe_split": {"columns": list(rows.columns),
                                                  "data": cells(rows.iloc[[i]])}}).encode()
                  for i in range(len(rows))]
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

        def call(i: int) -> object:
            conn.request("POST", "/invocations", body=bodies[i % len(bodies)],
                         headers={"Content-Type": "application/json"})
            resp = conn.getresponse()
            data = resp.read()
            if resp.status != 200:
                raise RuntimeError(data[:500])
            return data

        result = latency(call, calls)
        result["server_start_s"] = startup
        return result
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)


def onnxmltools_float32_gap(scorer: Any, spec: dict[str, Any], x: np.ndarray) -> dict[str, float]:
    """How far onnxmltools' float32 conversion is from LightGBM, raw and calibrated."""
    import onnxruntime as ort
    from onnxmltools.convert import convert_lightgbm
    from onnxmltools.convert.common.data_types import FloatTensorType

    from refundguard.serving.onnx import calibrate_from_spec, tiers_from_spec

    model = convert_lightgbm(scorer.booster, zipmap=False,
                             initial_types=[("features", FloatTensorType([None, x.shape[1]]))])
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    raw32 = np.asarray(sess.run(None, {"features": x.astype("float32")})[1])[:, 1]
    raw = scorer.booster.predict(x)
    p32, p = calibrate_from_spec(raw32, spec), calibrate_from_spec(raw, spec)
    return {
        "max_abs_raw_diff": float(np.abs(raw32 - raw).max()),
        "max_abs_calibrated_diff": float(np.abs(p32 - p).max()),
        "rows_over_1e-5": int((np.abs(p32 - p) > 1e-5).sum()),
        "tier_changes": int((tiers_from_spec(p32, spec, x) != tiers_from_spec(p, spec, x)).sum()),
        "rows": len(x),
    }


def profile_top(call: Callable[[], object], n: int = 12) -> list[str]:
    prof = cProfile.Profile()
    prof.enable()
    call()
    prof.disable()
    out = io.StringIO()
    pstats.Stats(prof, stream=out).sort_stats("tottime").print_stats(n)
    lines = [ln.rstrip() for ln in out.getvalue().splitlines()]
    start = next(i for i, ln in enumerate(lines) if ln.lstrip().startswith("ncalls"))
    return [ln for ln in lines[start:] if ln.strip()]


def run(root: Path, batch_rows: int, calls: int) -> dict[str, Any]:
    import inspect

    import lightgbm as lgb
    import mlflow.pyfunc
    import onnxruntime as ort

    from refundguard.model.bundle import split_from_info
    from refundguard.model.policy import risk_score
    from refundguard.model.train import split_rows
    from refundguard.serving.onnx import (
        INPUT_NAME,
        ONNX_FILE,
        OUTPUT_PROBABILITY,
        calibrate_from_spec,
        read_spec,
        tiers_from_spec,
    )
    from refundguard.serving.scorer import Scorer

    scorer = Scorer.load(root / "models/scorer")
    has_reasons = "reasons" in inspect.signature(Scorer.score).parameters
    info = json.loads((root / "models/model/training.json").read_text(encoding="utf-8"))
    snaps = pd.read_parquet(root / "data/features/snapshots.parquet")
    cols = ["buyer_id", *scorer.features]
    test = split_rows(snaps, split_from_info(info))["test"].loc[:, cols].reset_index(drop=True)
    print(f"test window: {len(test):,} buyers; model {scorer.model_version}", flush=True)
    opts: dict[str, bool] = {"reasons": False} if has_reasons else {}
    on: dict[str, bool] = {"reasons": True} if has_reasons else {}
    singles = [test.iloc[[i]].reset_index(drop=True) for i in range(min(200, len(test)))]

    result: dict[str, Any] = {"single_buyer": {}, "batch": {}}
    single = result["single_buyer"]
    single["python_api"] = latency(lambda i: scorer.score(singles[i % len(singles)], **on), calls)
    if has_reasons:
        single["python_api_no_reasons"] = latency(
            lambda i: scorer.score(singles[i % len(singles)], **opts), calls)
    print(f"python api: {single['python_api']}", flush=True)
    pyfunc = mlflow.pyfunc.load_model(str(root / "models/scorer"))
    single["pyfunc"] = latency(lambda i: pyfunc.predict(singles[i % len(singles)]), calls)
    print(f"pyfunc: {single['pyfunc']}", flush=True)
    single["rest"] = rest_latency(root, test.head(200), calls)
    print(f"rest: {single['rest']}", flush=True)
    spec = read_spec(root / "models/onnx")
    sess = ort.InferenceSession(str(root / "models/onnx" / ONNX_FILE),
                                providers=["CPUExecutionProvider"])
    xs = [s.loc[:, spec["features"]].to_numpy(dtype="float64") for s in singles]

    def onnx_one(i: int) -> object:
        x = xs[i % len(xs)]
        raw = sess.run([OUTPUT_PROBABILITY], {INPUT_NAME: x})[0]
        p = calibrate_from_spec(raw, spec)
        return tiers_from_spec(p, spec, x), risk_score(p)

    single["onnxruntime"] = latency(onnx_one, calls)
    single["onnxruntime_session_only"] = latency(
        lambda i: sess.run([OUTPUT_PROBABILITY], {INPUT_NAME: xs[i % len(xs)]}), calls)
    print(f"onnx: {single['onnxruntime']}", flush=True)

    x_test = test.loc[:, spec["features"]].to_numpy(dtype="float64")
    result["onnxmltools_float32"] = onnxmltools_float32_gap(scorer, spec, x_test)
    print(f"onnxmltools float32: {result['onnxmltools_float32']}", flush=True)

    rng = np.random.default_rng(0)
    big = test.iloc[rng.integers(0, len(test), size=batch_rows)].reset_index(drop=True)
    big["buyer_id"] = [f"S{i:07d}" for i in range(batch_rows)]
    x = big.loc[:, list(scorer.features)].to_numpy(dtype="float64")
    batch = result["batch"]
    flagged = scorer.score(big.head(200_000), **opts)["tier"].isin(["review", "restrict"]).mean()
    batch["flagged_share"] = float(flagged)
    for threads in (1, 2):
        scorer.num_threads = threads
        batch[f"scorer_no_reasons_{threads}_threads"] = best_rate(
            lambda: scorer.score(big, **opts), batch_rows, 3)
        batch[f"booster_predict_{threads}_threads"] = best_rate(
            lambda t=threads: scorer.booster.predict(x, num_threads=t), batch_rows, 3)
        print(f"{threads} threads: scorer {batch[f'scorer_no_reasons_{threads}_threads']}, "
              f"booster {batch[f'booster_predict_{threads}_threads']}", flush=True)
    scorer.num_threads = 2
    if has_reasons:
        batch["scorer_with_reasons_2_threads"] = best_rate(lambda: scorer.score(big, **on),
                                                           batch_rows, 1)
        print(f"with reasons: {batch['scorer_with_reasons_2_threads']}", flush=True)
    batch["onnxruntime_default_threads"] = best_rate(
        lambda: sess.run([OUTPUT_PROBABILITY], {INPUT_NAME: x}), batch_rows, 3)
    scorer.num_threads = 1
    batch["profile_scorer_no_reasons_1_thread"] = profile_top(lambda: scorer.score(big, **opts))
    booster: lgb.Booster = scorer.booster
    result["model"] = {
        "model_version": scorer.model_version, "trees": booster.num_trees(),
        "leaves": int(sum(t["num_leaves"] for t in booster.dump_model()["tree_info"])),
        "best_iteration": info.get("best_iteration"),
        "features": len(scorer.features), "test_window_buyers": len(test),
        "scorer_has_reasons_keyword": has_reasons,
    }
    result["batch_rows"] = batch_rows
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--project", type=Path, default=None)
    ap.add_argument("--buyers", type=int, default=20_000)
    ap.add_argument("--trials", type=int, default=None,
                    help="train.tuning.n_trials when building a project (default: params)")
    ap.add_argument("--batch-rows", type=int, default=1_000_000)
    ap.add_argument("--calls", type=int, default=1000)
    ap.add_argument("--keep", type=Path, default=None,
                    help="build the project in this (new) folder and keep it, for --project")
    args = ap.parse_args()
    load_before = list(os.getloadavg())
    with tempfile.TemporaryDirectory(prefix="rg-bench-scorer-") as tmp:
        root = args.project
        if root is None:
            root = args.keep or Path(tmp)
            root.mkdir(parents=True, exist_ok=True)
            build_project(root, args.buyers, args.trials)
        os.environ.setdefault("MLFLOW_TRACKING_URI", f"sqlite:///{root / 'mlflow.db'}")
        result = run(root.resolve(), args.batch_rows, args.calls)
        params_file = root / "params.yaml"
        sim = yaml.safe_load(params_file.read_text(encoding="utf-8")) or {}
    buyers = int(sim.get("simulate", {}).get("n_buyers", args.buyers))
    result["world_buyers"] = buyers
    # The load average says whether other work shared the cores during the run.
    result["machine"] = {"cpus": os.cpu_count(), "python": platform.python_version(),
                         "platform": platform.platform(), "load_before": load_before,
                         "load_after": list(os.getloadavg())}
    result["command"] = " ".join(["benchmarks/bench_scorer.py", *sys.argv[1:]])
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"scorer_{buyers}.json"
    out.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    print(f"-> {out}")


if __name__ == "__main__":
    main()
