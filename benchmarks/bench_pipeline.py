"""Time every pipeline stage and record its peak memory for a given number of buyers.

Each stage runs in its own process (so peak RSS is that stage's alone) inside a
temporary project root (REFUNDGUARD_ROOT), with the repository's params.yaml and only
``simulate.n_buyers`` changed. Results go to benchmarks/results/pipeline_<N>.json and to
the table in benchmarks/README.md.

    .venv/bin/python benchmarks/bench_pipeline.py --buyers 20000
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
README = REPO / "benchmarks" / "README.md"
STAGES = ("simulate", "validate", "sentiment", "features", "train", "evaluate", "export")

RUNNER = """
import json, resource, sys, time
from refundguard.stages import simulate, validate, sentiment, features, train, evaluate, export
stage = {"simulate": simulate, "validate": validate, "sentiment": sentiment,
         "features": features, "train": train, "evaluate": evaluate, "export": export}[sys.argv[1]]
t = time.perf_counter()
stage.main()
seconds = time.perf_counter() - t
peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"seconds": seconds, "peak_rss_mb": peak_mb}))
"""


def run(buyers: int, days: int | None) -> dict[str, object]:
    params = yaml.safe_load((REPO / "params.yaml").read_text(encoding="utf-8"))
    params["simulate"]["n_buyers"] = buyers
    if days:
        params["simulate"]["days"] = days
    stages: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="rg-bench-") as tmp:
        root = Path(tmp)
        (root / "params.yaml").write_text(yaml.safe_dump(params), encoding="utf-8")
        env = {**os.environ, "REFUNDGUARD_ROOT": str(root),
               "MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlflow.db'}"}
        for stage in STAGES:
            t = time.perf_counter()
            proc = subprocess.run([sys.executable, "-c", RUNNER, stage], env=env, cwd=root,
                                  capture_output=True, text=True, check=False)
            if proc.returncode != 0:
                sys.exit(f"stage {stage} failed:\n{proc.stderr[-3000:]}")
            result = json.loads(proc.stdout.strip().splitlines()[-1])
            result["wall_seconds_with_startup"] = time.perf_counter() - t
            stages[stage] = result
            print(f"{stage:10s} {result['seconds']:8.1f} s  {result['peak_rss_mb']:8.0f} MB",
                  flush=True)
        sizes = {}
        for name in ("orders", "refunds", "reviews", "labels"):
            import pandas as pd

            sizes[name] = len(pd.read_parquet(root / "data" / "validated" / f"{name}.parquet"))
        metrics = json.loads((root / "reports" / "metrics.json").read_text(encoding="utf-8"))
    return {
        "buyers": buyers,
        "days": params["simulate"]["days"],
        "rows": sizes,
        "stages": stages,
        "total_seconds": sum(s["seconds"] for s in stages.values()),
        "test_average_precision": {k: metrics[k]["average_precision"]
                                   for k in ("model", "plain")},
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "platform": platform.platform()},
        "command": f".venv/bin/python benchmarks/bench_pipeline.py --buyers {buyers}",
    }


def table(results: list[dict[str, object]]) -> str:
    lines = ["| buyers | orders | " + " | ".join(STAGES) + " | total |",
             "|---|---|" + "---|" * (len(STAGES) + 1)]
    for r in sorted(results, key=lambda r: r["buyers"]):  # type: ignore[arg-type,return-value]
        stages = r["stages"]
        cells = [f"{stages[s]['seconds']:.1f} s / {stages[s]['peak_rss_mb']:.0f} MB"  # type: ignore[index]
                 for s in STAGES]
        lines.append(f"| {r['buyers']:,} | {r['rows']['orders']:,} | " + " | ".join(cells)  # type: ignore[index]
                     + f" | {r['total_seconds']:.0f} s |")
    return "\n".join(lines) + "\n"


def update_readme() -> None:
    results = [json.loads(p.read_text()) for p in sorted(RESULTS.glob("pipeline_*.json"))]
    text = README.read_text(encoding="utf-8")
    block = table(results)
    text = re.sub(r"(<!-- pipeline:start -->\n).*?(<!-- pipeline:end -->)",
                  lambda m: m.group(1) + block + m.group(2), text, flags=re.S)
    README.write_text(text, encoding="utf-8")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--buyers", type=int, required=True)
    ap.add_argument("--days", type=int, default=None)
    args = ap.parse_args()
    result = run(args.buyers, args.days)
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"pipeline_{args.buyers}.json"
    out.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    update_readme()
    print(f"total {result['total_seconds']:.0f} s -> {out}")


if __name__ == "__main__":
    main()
