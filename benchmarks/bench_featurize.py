"""Featurize time and peak memory: every active buyer's features as of one cutoff.

Step 1 (its own process): simulate N buyers and validate them into Parquet.
Step 2 (its own process, measured): read the validated tables, join them
(``prepare_events``) and compute the full feature catalog at the latest cutoff for every
buyer active in the last year (``compute_features``). Peak RSS is step 2's alone.

    .venv/bin/python benchmarks/bench_featurize.py --buyers 200000
    .venv/bin/python benchmarks/bench_featurize.py --buyers 1000000
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"

PREPARE = """
import sys, time
from pathlib import Path
from refundguard.config import SimulateParams
from refundguard.sim.simulate import simulate_world
from refundguard.data.validate import validate_tables, write_result
n, out = int(sys.argv[1]), Path(sys.argv[2])
t = time.perf_counter()
w = simulate_world(SimulateParams(n_buyers=n), seed=42)
raw = {k: getattr(w, k) for k in ("orders", "refunds", "reviews", "labels", "buyers")}
del w
res = validate_tables(raw, timezone="Asia/Shanghai", max_text_chars=2000)
write_result(res, out)
print(time.perf_counter() - t)
"""

MEASURE = """
import json, resource, sys, time
from pathlib import Path
import pandas as pd
from refundguard.config import FeaturesParams
from refundguard.features.catalog import build_catalog
from refundguard.features.build import compute_features, load_validated
from refundguard.features.events import prepare_events
folder = Path(sys.argv[1])
t0 = time.perf_counter()
tables = load_validated(folder)
t1 = time.perf_counter()
events = prepare_events(tables["orders"], tables["refunds"], tables["reviews"], tables["buyers"],
                        labels=tables["labels"], timezone="Asia/Shanghai")
t2 = time.perf_counter()
cutoff = tables["orders"]["created_at"].max().normalize()
feats = compute_features(events, cutoff, build_catalog(FeaturesParams()), active_days=365)
t3 = time.perf_counter()
print(json.dumps({
    "orders": len(tables["orders"]), "refunds": len(tables["refunds"]),
    "reviews": len(tables["reviews"]), "buyers_scored": len(feats),
    "features": feats.shape[1] - 2,
    "read_seconds": t1 - t0, "prepare_seconds": t2 - t1, "compute_seconds": t3 - t2,
    "featurize_seconds": t3 - t1,
    "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
}))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--buyers", type=int, required=True)
    args = ap.parse_args()
    env = {**os.environ, "OMP_NUM_THREADS": "2"}
    with tempfile.TemporaryDirectory(prefix="rg-feat-") as tmp:
        prep = subprocess.run([sys.executable, "-c", PREPARE, str(args.buyers), tmp], env=env,
                              capture_output=True, text=True, check=False)
        if prep.returncode:
            sys.exit(prep.stderr[-3000:])
        t = time.perf_counter()
        run = subprocess.run([sys.executable, "-c", MEASURE, tmp], env=env,
                             capture_output=True, text=True, check=False)
        if run.returncode:
            sys.exit(run.stderr[-3000:])
        result = json.loads(run.stdout.strip().splitlines()[-1])
    result.update(buyers=args.buyers, wall_seconds_with_startup=time.perf_counter() - t,
                  simulate_and_validate_seconds=float(prep.stdout.strip().splitlines()[-1]),
                  cpus=os.cpu_count(),
                  command=f".venv/bin/python benchmarks/bench_featurize.py --buyers {args.buyers}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"featurize_{args.buyers}.json"
    out.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
