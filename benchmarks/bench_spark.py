"""Featurize one cutoff on both engines: time, driver peak RSS and machine peak memory.

Step 1 (its own process): simulate N buyers and validate them into Parquet (or, with
``--data``, use a validated folder that exists).
Step 2 (its own process, measured): the local engine, ``build_snapshots`` at the latest
cutoff (read, join, compute), as the features stage runs it.
Step 3 (its own process, measured): the Spark engine, ``featurize_spark`` at the same
cutoff in local mode, writing the snapshots as Parquet partitioned by cutoff. Its time
is given with and without starting the JVM.

While steps 2 and 3 run, a sampler reads every 0.5 s the resident memory of the measured
process and of all its children (the JVM and the Python workers), and the machine's used
memory (MemTotal - MemAvailable). The machine is shared: its figure includes everyone.

    .venv/bin/python benchmarks/bench_spark.py --buyers 20000
    .venv/bin/python benchmarks/bench_spark.py --buyers 200000 --partitions 16
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

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

# One shard of a world too large to simulate at once: its own seed, and every id but the
# seller's (sellers and categories are the marketplace's, shared by all shards) prefixed
# with the shard, so that shards never share a buyer, an order or a device. Each table
# goes to <table>.parquet/part-<shard>.parquet, a folder that Spark and pandas both read.
SHARD = """
import sys, time
from pathlib import Path
from refundguard.config import SimulateParams
from refundguard.data.io import write_parquet
from refundguard.sim.simulate import simulate_world
from refundguard.data.validate import validate_tables
n, out, shard = int(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
t = time.perf_counter()
w = simulate_world(SimulateParams(n_buyers=n), seed=42 + shard)
raw = {k: getattr(w, k) for k in ("orders", "refunds", "reviews", "labels", "buyers")}
del w
for table in raw.values():
    for col in table.columns:
        if col.endswith("_id") and col != "seller_id":
            table[col] = f"s{shard:04d}-" + table[col].astype("str")
res = validate_tables(raw, timezone="Asia/Shanghai", max_text_chars=2000)
for name, table in res.tables.items():
    write_parquet(table, out / f"{name}.parquet" / f"part-{shard:05d}.parquet")
print(time.perf_counter() - t)
"""

# The cutoff: the local midnight (UTC here) before the last order, as bench_featurize.
LOCAL = """
import json, sys, time
from pathlib import Path
import pandas as pd
from refundguard.config import FeaturesParams
from refundguard.features.catalog import build_catalog
from refundguard.features.build import build_snapshots, load_validated
from refundguard.features.events import prepare_events
folder, out = Path(sys.argv[1]), Path(sys.argv[2])
t0 = time.perf_counter()
tables = load_validated(folder)
cutoff = tables["orders"]["created_at"].max().normalize()
events = prepare_events(tables["orders"], tables["refunds"], tables["reviews"], tables["buyers"],
                        labels=tables["labels"], timezone="Asia/Shanghai")
fp = FeaturesParams()
snaps = build_snapshots(events, tables["labels"], [cutoff], build_catalog(fp),
                        horizon_days=42, active_days=fp.active_days)
t1 = time.perf_counter()
snaps.to_parquet(out)
print(json.dumps({"seconds": t1 - t0, "rows": len(snaps), "orders": len(tables["orders"]),
                  "cutoff": cutoff.isoformat()}))
"""

SPARK = """
import json, sys, time
from pathlib import Path
t0 = time.perf_counter()
import pandas as pd
from pyspark.sql import functions as F
from refundguard.features import spark as se
from refundguard.config import FeaturesParams
from refundguard.features.catalog import build_catalog
folder, out, master, parts = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3], int(sys.argv[4])
conf = json.loads(sys.argv[5])
spark = se.spark_session(master, parts, conf, work_dir=out.parent / "spark-work")
t1 = time.perf_counter()
last = spark.read.parquet(str(folder / "orders.parquet")).agg(F.max("created_at")).first()[0]
cutoff = pd.Timestamp(last).tz_localize("UTC").normalize()
fp = FeaturesParams()
snaps = se.featurize_spark(spark, folder, None, [cutoff], build_catalog(fp), horizon_days=42,
                           active_days=fp.active_days, timezone="Asia/Shanghai",
                           partitions=parts, link_max_accounts=fp.link_max_accounts)
se.write_snapshots(snaps, out)
t2 = time.perf_counter()
rows = spark.read.parquet(str(out)).count()
spark.stop()
print(json.dumps({"seconds": t2 - t1, "seconds_with_startup": t2 - t0,
                  "startup_seconds": t1 - t0, "rows": rows, "cutoff": cutoff.isoformat()}))
"""


def _machine_used_mb() -> float:
    vm = psutil.virtual_memory()
    return (vm.total - vm.available) / 2**20


class Sampler:
    """Peak RSS of a process, of its process tree, and of the machine, every 0.5 s."""

    def __init__(self, pid: int) -> None:
        self.proc = psutil.Process(pid)
        self.peak_driver = 0.0
        self.peak_tree = 0.0
        self.peak_machine = 0.0
        self.peak_children: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                driver = self.proc.memory_info().rss / 2**20
                tree = driver
                by_kind: dict[str, float] = {}
                for child in self.proc.children(recursive=True):
                    try:
                        rss = child.memory_info().rss / 2**20
                        kind = "jvm" if "java" in child.name() else "python_workers"
                    except psutil.Error:
                        continue
                    tree += rss
                    by_kind[kind] = by_kind.get(kind, 0.0) + rss
            except psutil.Error:
                break
            self.peak_driver = max(self.peak_driver, driver)
            self.peak_tree = max(self.peak_tree, tree)
            self.peak_machine = max(self.peak_machine, _machine_used_mb())
            for kind, rss in by_kind.items():
                self.peak_children[kind] = max(self.peak_children.get(kind, 0.0), rss)
            time.sleep(0.5)

    def stop(self) -> dict[str, float]:
        self._stop.set()
        self._thread.join()
        return {
            "driver_peak_rss_mb": round(self.peak_driver, 1),
            "process_tree_peak_rss_mb": round(self.peak_tree, 1),
            "machine_peak_used_mb": round(self.peak_machine, 1),
            **{f"{k}_peak_rss_mb": round(v, 1) for k, v in self.peak_children.items()},
        }


def measured(cmd: list[str], env: dict[str, str]) -> dict[str, object]:
    baseline = _machine_used_mb()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    sampler = Sampler(proc.pid)
    out, err = proc.communicate()
    memory = sampler.stop()
    if proc.returncode:
        sys.exit(err[-4000:])
    result: dict[str, object] = json.loads(out.strip().splitlines()[-1])
    result.update(memory, machine_used_before_mb=round(baseline, 1))
    return result


def prepare(folder: Path, buyers: int, shards: int, env: dict[str, str], jobs: int = 1) -> float:
    """Simulate and validate ``buyers`` buyers into ``folder``; returns the seconds taken.

    With shards, ``jobs`` shard processes run at a time (each holds one shard in memory);
    the figure is the wall time of the whole preparation.
    """
    began = time.perf_counter()
    if shards <= 1:
        runs = [[sys.executable, "-c", PREPARE, str(buyers), str(folder)]]
    else:
        size = -(-buyers // shards)
        runs = [
            [sys.executable, "-c", SHARD, str(min(size, buyers - i * size)), str(folder), str(i)]
            for i in range(shards)
        ]
    pending = list(runs)
    running: list[subprocess.Popen[str]] = []
    while pending or running:
        while pending and len(running) < max(1, jobs):
            running.append(
                subprocess.Popen(pending.pop(0), env=env, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True)
            )
        proc = running.pop(0)
        _, err = proc.communicate()
        if proc.returncode:
            for other in running:
                other.kill()
            sys.exit(err[-3000:])
    return time.perf_counter() - began


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--buyers", type=int, required=True)
    ap.add_argument("--master", default="local[2]")
    ap.add_argument("--partitions", type=int, default=8)
    ap.add_argument("--driver-memory", default="4g", help="spark.driver.memory (local mode)")
    ap.add_argument("--data", type=Path, help="a validated folder to use instead of simulating")
    ap.add_argument("--skip-local", action="store_true", help="measure the Spark engine only")
    ap.add_argument(
        "--shards",
        type=int,
        default=1,
        help="simulate in this many buyer shards, one process each (for worlds that do not "
        "fit in memory at once); the validated tables are folders of one file per shard",
    )
    ap.add_argument("--jobs", type=int, default=1,
                    help="shard processes to run at once while simulating (each holds a shard)")
    args = ap.parse_args()
    env = {**os.environ, "OMP_NUM_THREADS": "2"}
    conf = {"spark.driver.memory": args.driver_memory}
    result: dict[str, object] = {
        "buyers": args.buyers,
        "cpus": os.cpu_count(),
        "machine_total_mb": round(psutil.virtual_memory().total / 2**20),
        "master": args.master,
        "partitions": args.partitions,
        "spark_conf": conf,
        "command": f".venv/bin/python benchmarks/bench_spark.py --buyers {args.buyers} "
        f"--partitions {args.partitions} --driver-memory {args.driver_memory}"
        + (f" --shards {args.shards} --jobs {args.jobs}" if args.shards > 1 else "")
        + (" --skip-local" if args.skip_local else ""),
    }
    with tempfile.TemporaryDirectory(prefix="rg-spark-", dir=REPO / "benchmarks") as tmp:
        folder = args.data
        if folder is None:
            folder = Path(tmp) / "validated"
            result["simulate_and_validate_seconds"] = prepare(
                folder, args.buyers, args.shards, env, args.jobs
            )
            result["shards"] = args.shards
        if not args.skip_local:
            result["local"] = measured(
                [sys.executable, "-c", LOCAL, str(folder), str(Path(tmp) / "local.parquet")], env
            )
        result["spark"] = measured(
            [
                sys.executable,
                "-c",
                SPARK,
                str(folder),
                str(Path(tmp) / "snapshots"),
                args.master,
                str(args.partitions),
                json.dumps(conf),
            ],
            env,
        )
        local = result.get("local")
        if isinstance(local, dict):
            spark = result["spark"]
            assert isinstance(spark, dict)
            result["same_rows"] = local["rows"] == spark["rows"]
            result["spark_over_local_time"] = round(spark["seconds"] / local["seconds"], 2)
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"spark_{args.buyers}.json"
    out.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
