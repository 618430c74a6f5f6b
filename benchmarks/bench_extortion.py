"""How often the extortion detector fires on honest reviews, how well it finds demands, how fast.

Measures:

* on the real negative reviews (label 0) of waimai_10k and ChnSentiCorp_htl_all, honest
  buyers' complaints, the share that ``detect(...).score >= 0.5`` flags as demands, and
  the share with any evidence at all (score > 0); every flagged review is listed;
* on the independent evaluation set tests/data/extortion_eval.csv (written by someone
  who never read the simulator; columns id, label, kind, lang, text; label demand or
  complaint), precision and recall of ``score >= 0.5``, overall, per language and per
  kind, with every miss and false alarm listed;
* throughput of ``detect`` on one core, end to end from raw strings, on 100,000 reviews
  drawn with replacement (seed 0) from both corpora, all labels;
* on a simulated world (5,000 buyers, seed 0), the weakly supervised demand model trained
  at a cutoff: its weak labels, and the ROC AUC of the model and of the lexicon for the
  1-2 star reviews written after the cutoff by extortion reviewers against everyone
  else's, and of the model's out-of-fold scores (``demand_scores``) for the 1-2 star
  reviews before the cutoff that it trains on.

Results go to benchmarks/results/extortion.json.

    .venv/bin/python benchmarks/bench_extortion.py [--reviews-dir DIR] [--skip-eval]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results" / "extortion.json"
EVAL_SET = REPO / "tests" / "data" / "extortion_eval.csv"
CORPORA = {"waimai": "waimai_10k.csv", "hotel": "ChnSentiCorp_htl_all.csv"}
THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
THRESHOLD = 0.5
SEED = 0
N_THROUGHPUT = 100_000


def single_threaded() -> None:
    """Re-run this script with one BLAS/OpenMP thread, before numpy is imported."""
    if all(os.environ.get(v) == "1" for v in THREAD_VARS):
        return
    env = {**os.environ, **dict.fromkeys(THREAD_VARS, "1")}
    os.execve(sys.executable, [sys.executable, *sys.argv], env)


def default_reviews_dir() -> Path:
    env = os.environ.get("REFUNDGUARD_REVIEWS_DIR")
    return Path(env) if env else REPO.parent / "shared" / "data" / "reviews"


def precision_recall(truth: Any, flagged: Any) -> dict[str, Any]:
    tp = int((truth & flagged).sum())
    fp = int((~truth & flagged).sum())
    fn = int((truth & ~flagged).sum())
    return {
        "n": int(truth.size),
        "positives": int(truth.sum()),
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "precision": tp / (tp + fp) if tp + fp else None,
        "recall": tp / (tp + fn) if tp + fn else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reviews-dir", type=Path, default=default_reviews_dir())
    parser.add_argument("--eval-set", type=Path, default=EVAL_SET)
    parser.add_argument("--skip-eval", action="store_true", help="leave the evaluation set out")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    single_threaded()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})

    import numpy as np
    import pandas as pd
    from sklearn.metrics import roc_auc_score

    from refundguard.config import SimulateParams
    from refundguard.features.extortion import (
        demand_scores,
        detect,
        load_lexicon,
        train_demand_model,
        weak_labels,
    )
    from refundguard.sim.simulate import simulate_world

    lexicon = load_lexicon()
    results: dict[str, Any] = {"threshold": THRESHOLD}

    # ---- honest negative reviews of the real corpora
    corpora: dict[str, Any] = {}
    all_texts: list[str] = []
    for name, file in CORPORA.items():
        frame = pd.read_csv(args.reviews_dir / file)
        all_texts += frame["review"].fillna("").astype(str).tolist()
        neg = frame.loc[frame["label"] == 0, "review"].astype(str).reset_index(drop=True)
        found = detect(neg.tolist(), lexicon)
        flagged = found["score"] >= THRESHOLD
        corpora[name] = {
            "negative_reviews": len(neg),
            "flagged": int(flagged.sum()),
            "flagged_share": float(flagged.mean()),
            "any_evidence_share": float((found["score"] > 0).mean()),
            "score_counts": {
                f"{k:.1f}": int(v) for k, v in found["score"].value_counts().sort_index().items()
            },
            "flagged_reviews": [
                {"score": float(s), "phrase": p, "text": t[:200]}
                for s, p, t in zip(
                    found["score"][flagged], found["phrase"][flagged], neg[flagged], strict=True
                )
            ],
        }
        print(f"{name}: {int(flagged.sum())} of {len(neg)} negative reviews flagged", flush=True)
    total = sum(c["negative_reviews"] for c in corpora.values())
    total_flagged = sum(c["flagged"] for c in corpora.values())
    results["real_negatives"] = {
        "corpora": corpora,
        "negative_reviews": total,
        "flagged": total_flagged,
        "flagged_share": total_flagged / total,
        "target": "< 0.005",
    }

    # ---- the independent evaluation set
    if not args.skip_eval and args.eval_set.is_file():
        ev = pd.read_csv(args.eval_set, dtype=str, keep_default_na=False)
        found = detect(ev["text"].tolist(), lexicon)
        truth = (ev["label"] == "demand").to_numpy()
        flagged = (found["score"] >= THRESHOLD).to_numpy()
        block: dict[str, Any] = {"file": str(args.eval_set.relative_to(REPO))}
        block["overall"] = precision_recall(truth, flagged)
        # Other thresholds, to show where the misses sit (0.4 is a demand alone, 0.3 an
        # escalation alone); the shipped threshold stays 0.5.
        block["by_threshold"] = {
            f"{t:.2f}": precision_recall(truth, (found["score"] >= t).to_numpy())
            for t in (0.3, 0.4, 0.45, 0.5)
        }
        block["by_lang"] = {
            lang: precision_recall(truth[m], flagged[m])
            for lang in sorted(ev["lang"].unique())
            for m in [(ev["lang"] == lang).to_numpy()]
        }
        block["by_kind"] = {
            kind: precision_recall(truth[m], flagged[m])
            for kind in sorted(ev["kind"].unique())
            for m in [(ev["kind"] == kind).to_numpy()]
        }
        wrong = np.flatnonzero(truth != flagged)
        block["errors"] = [
            {
                "id": ev["id"].iloc[i],
                "label": ev["label"].iloc[i],
                "kind": ev["kind"].iloc[i],
                "score": float(found["score"].iloc[i]),
                "phrase": found["phrase"].iloc[i],
                "text": ev["text"].iloc[i],
            }
            for i in wrong.tolist()
        ]
        block["target"] = "recall >= 0.85 at precision >= 0.95"
        results["eval_set"] = block
        o = block["overall"]
        print(f"eval set: precision {o['precision']}, recall {o['recall']}", flush=True)

    # ---- throughput
    rng = np.random.default_rng(SEED)
    sample = [all_texts[i] for i in rng.integers(0, len(all_texts), N_THROUGHPUT)]
    detect(sample[:2000], lexicon)  # OpenCC dictionaries and the character table
    start, cpu_start = time.perf_counter(), time.process_time()
    detect(sample, lexicon)
    seconds = time.perf_counter() - start
    # CPU time too: on a shared machine the wall clock counts other people's work.
    cpu_seconds = time.process_time() - cpu_start
    results["throughput"] = {
        "reviews": N_THROUGHPUT,
        "mean_chars": float(np.mean([len(t) for t in sample])),
        "seconds": seconds,
        "reviews_per_second": N_THROUGHPUT / seconds,
        "cpu_seconds": cpu_seconds,
        "reviews_per_cpu_second": N_THROUGHPUT / cpu_seconds,
        "load_average_1min": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
    }
    print(
        f"throughput: {N_THROUGHPUT / seconds:,.0f} reviews/s wall, "
        f"{N_THROUGHPUT / cpu_seconds:,.0f} per CPU second",
        flush=True,
    )

    # ---- weakly supervised demand model on a simulated world
    world = simulate_world(dataclasses.replace(SimulateParams(), n_buyers=5_000), seed=SEED)
    reviews, refunds, orders = world.reviews, world.refunds, world.orders
    posted = pd.to_datetime(reviews["created_at"], utc=True)
    cutoff = posted.quantile(0.5).floor("D")
    start = time.perf_counter()
    model = train_demand_model(reviews, refunds, orders, cutoff)
    train_seconds = time.perf_counter() - start
    labels = weak_labels(reviews, refunds, orders, cutoff)
    segment = world.truth.set_index("buyer_id")["segment"]
    buyer = reviews["order_id"].map(orders.set_index("order_id")["buyer_id"])
    extortion = (buyer.map(segment) == "extortion_reviewer").to_numpy()
    train_pop = reviews["review_id"].isin(labels["review_id"]).to_numpy()
    later = ((posted >= cutoff) & (reviews["rating"] <= 2)).to_numpy()
    texts = reviews["text"].astype(str)[later].tolist()
    y = extortion[later]
    lex_score = detect(texts, lexicon)["score"].to_numpy()
    # Before the cutoff: out-of-fold scores of the 1-2 star reviews the model trains on.
    oof = demand_scores(reviews, refunds, orders, cutoff)
    oof_score = oof.set_index("review_id")["model_score"]
    pop = labels["review_id"].to_numpy()
    y_pop = extortion[train_pop]
    results["simulated_world"] = {
        "n_buyers": 5_000,
        "seed": SEED,
        "cutoff": str(cutoff),
        "train_seconds": train_seconds,
        "weak_labels": {
            "reviews": len(labels),
            "demand_like": int(labels["demand_like"].sum()),
            "demand_like_share_of_extortion_reviews": float(
                labels["demand_like"].to_numpy()[extortion[train_pop]].mean()
            ),
            "demand_like_share_of_other_reviews": float(
                labels["demand_like"].to_numpy()[~extortion[train_pop]].mean()
            ),
        },
        "test_low_star_reviews": int(later.sum()),
        "test_extortion_share": float(y.mean()),
        "auc_model": float(roc_auc_score(y, model.score(texts))),
        "auc_lexicon": float(roc_auc_score(y, lex_score)),
        "lexicon_flag_rate_extortion": float((lex_score[y] >= THRESHOLD).mean()),
        "lexicon_flag_rate_others": float((lex_score[~y] >= THRESHOLD).mean()),
        "auc_model_out_of_fold_before_cutoff": float(
            roc_auc_score(y_pop, oof_score.reindex(pop).to_numpy())
        ),
    }
    if "eval_set" in results:
        # The model learned from the simulated platform, applied to the independent set:
        # how far text learned from one platform's requests carries to other writing.
        ev = pd.read_csv(args.eval_set, dtype=str, keep_default_na=False)
        results["eval_set"]["auc_demand_model_trained_on_simulated_world"] = float(
            roc_auc_score((ev["label"] == "demand").to_numpy(), model.score(ev["text"].tolist()))
        )
    print(json.dumps(results["simulated_world"], indent=2), flush=True)

    results["machine"] = {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "pandas": pd.__version__,
    }
    results["command"] = "python benchmarks/bench_extortion.py" + (
        " --skip-eval" if args.skip_eval else ""
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"written: {args.out}")


if __name__ == "__main__":
    main()
