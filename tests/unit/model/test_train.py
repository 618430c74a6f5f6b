"""Training core: monotone constraints, tuning, reweighting check, calibration choice."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest

from refundguard.config import (
    EvaluateParams,
    LightGBMParams,
    Params,
    SearchRange,
    TrainParams,
    TuningParams,
)
from refundguard.errors import ConfigError, DataContractError, ModelError
from refundguard.model.bundle import (
    HOLDOUT_DIR,
    TrainedModel,
    TrainingInfo,
    load_holdout_model,
    load_model,
    load_policy,
    load_training_info,
    model_files,
    save_model,
)
from refundguard.model.calibration import Calibrator
from refundguard.model.train import (
    WEIGHT_COLUMN,
    TrainingResult,
    brier,
    choose_calibration,
    crossfit_blocks,
    datasets,
    fit,
    fit_booster,
    fit_rounds,
    monotone_vector,
    reference_distribution,
    rolling_scores,
    sample_negatives,
    scaled_rounds,
    train,
    train_model,
    tune,
    with_known,
)

FAST = LightGBMParams(num_boost_round=60, early_stopping_rounds=20, min_data_in_leaf=5,
                      num_leaves=8, learning_rate=0.2, num_threads=1)


def _bumpy(rng: np.random.Generator, n: int = 3000) -> pd.DataFrame:
    """Risk rises with x0 except for a dip in its middle; x1 is noise-free signal."""
    x0 = rng.random(n)
    x1 = rng.random(n)
    logit = -3 + 3 * x0 - 4 * ((x0 > 0.4) & (x0 < 0.6)) + 2 * x1
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    return pd.DataFrame({"x0": x0, "x1": x1, "target": y})


def _sweep(predict: object, rows: pd.DataFrame, feature: str, grid: np.ndarray) -> np.ndarray:
    """Predictions (rows x grid) with ``feature`` set to each grid value in turn."""
    out = []
    for v in grid:
        changed = rows.copy()
        changed[feature] = v
        out.append(predict(changed))  # type: ignore[operator]
    return np.column_stack(out)


def test_monotone_constraint_holds_and_is_needed(rng: np.random.Generator) -> None:
    data = _bumpy(rng)
    train, valid = data.iloc[:2000], data.iloc[2000:]
    grid = np.linspace(0, 1, 41)
    rows = valid.head(50)

    free = fit_booster(train, valid, ["x0", "x1"], FAST, seed=0)
    bound = fit_booster(train, valid, ["x0", "x1"], FAST, seed=0, monotone=[1, 0])
    x = ["x0", "x1"]
    free_sweep = _sweep(lambda f: free.predict(f[x].to_numpy()), rows, "x0", grid)
    bound_sweep = _sweep(lambda f: bound.predict(f[x].to_numpy()), rows, "x0", grid)
    # Without the constraint the dip is learned (the sweep can fall); with it, never.
    assert (np.diff(free_sweep, axis=1) < -1e-9).any()
    assert (np.diff(bound_sweep, axis=1) >= -1e-12).all()


def test_pipeline_model_is_monotone_in_every_constrained_feature(project: Path) -> None:
    info = json.loads((project / "models/model/training.json").read_text(encoding="utf-8"))
    assert info["monotone_increasing"], "the default params constrain some features"
    model = load_model(project / "models/model")
    snaps = pd.read_parquet(project / "data/features/snapshots.parquet")
    rows = snaps.sample(200, random_state=0)
    for feature in info["monotone_increasing"]:
        values = snaps[feature].dropna()
        grid = np.unique(np.quantile(values, np.linspace(0, 1, 25)))
        grid = np.unique(np.concatenate([grid, [values.max() * 2 + 1]]))
        for predict in (model.raw, model.predict):
            sweep = _sweep(predict, rows, feature, grid)
            assert (np.diff(sweep, axis=1) >= -1e-12).all(), feature


@pytest.mark.parametrize(
    ("increasing", "message"),
    [(["nope"], "unknown feature"), (["b"], "does not say higher")],
)
def test_monotone_vector_rejects_unsure_features(increasing: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        monotone_vector(["a", "b"], increasing, {"a": 1, "b": -1})


def test_monotone_vector_marks_named_features() -> None:
    assert monotone_vector(["a", "b", "c"], ["c", "a"], {"a": 1, "b": 0, "c": 1}) == [1, 0, 1]
    assert monotone_vector(["a"], [], {"a": 1}) == [0]


def _folds(rng: np.random.Generator, k: int = 2) -> list[tuple[lgb.Dataset, lgb.Dataset]]:
    out = []
    for _ in range(k):
        data = _bumpy(rng, 1500)
        out.append(datasets(data.iloc[:1000], data.iloc[1000:], ["x0", "x1"], 63))
    return out


SPACE = TuningParams(
    n_trials=4,
    n_folds=2,
    search_space={
        "num_leaves": SearchRange(4, 16, log=True, integer=True),
        "lambda_l2": SearchRange(0.01, 10.0, log=True),
    },
)


def test_tune_is_seeded_starts_from_base_and_keeps_the_best(rng: np.random.Generator) -> None:
    folds = _folds(rng)
    a = tune(folds, ["f1", "f2"], ["x0", "x1"], FAST, SPACE, seed=3)
    b = tune(folds, ["f1", "f2"], ["x0", "x1"], FAST, SPACE, seed=3)
    assert a == b
    assert len(a.trials) == 4 and not a.timed_out
    assert a.trials[0]["params"] == {"num_leaves": FAST.num_leaves, "lambda_l2": FAST.lambda_l2}
    best = max(a.trials, key=lambda t: t["ap_mean"])
    assert a.params == dataclasses.replace(FAST, **best["params"])
    # The trial's mean is the mean of the folds' average precision with those settings.
    again = rolling_scores(folds, ["x0", "x1"], a.params, seed=3)
    assert np.mean(again) == pytest.approx(best["ap_mean"])


def test_tune_with_no_trials_keeps_the_settings(rng: np.random.Generator) -> None:
    out = tune(_folds(rng), ["f"], ["x0", "x1"], FAST,
               dataclasses.replace(SPACE, n_trials=0), seed=0)
    assert out.params == FAST and out.trials == []


def test_reweighting_changes_the_fit(rng: np.random.Generator) -> None:
    folds = _folds(rng, 1)
    plain = rolling_scores(folds, ["x0", "x1"], FAST, seed=0)
    weighted = rolling_scores(folds, ["x0", "x1"], FAST, seed=0, reweight=True)
    assert plain != weighted


def test_choose_calibration_picks_the_lower_cross_validated_brier(
    rng: np.random.Generator,
) -> None:
    raw = rng.random(4000)
    y = (rng.random(4000) < raw**3).astype(int)
    cal, scores = choose_calibration(raw, y, "auto", seed=0)
    assert set(scores) == {"isotonic", "platt"}
    assert cal.method == min(scores, key=lambda k: scores[k])
    fixed, none = choose_calibration(raw, y, "platt", seed=0)
    assert fixed.method == "platt" and none == {}
    assert brier(y, cal.predict(raw)) <= brier(y, raw)


def test_calibration_is_fitted_on_the_later_window(rng: np.random.Generator) -> None:
    data = _bumpy(rng)
    later = data.iloc[2400:].copy()
    later["target"] = 0
    later.iloc[: len(later) // 2, later.columns.get_loc("target")] = 1
    m = train_model(data.iloc[:1800], data.iloc[1800:2400], ["x0", "x1"], FAST, seed=0,
                    calibration="isotonic", calibration_rows=later)
    # Half the calibration rows are positive whatever their score: the map is near 0.5.
    assert abs(m.predict(later).mean() - 0.5) < 0.05
    with pytest.raises(DataContractError, match="calibration window"):
        train_model(data.iloc[:1800], data.iloc[1800:2400], ["x0", "x1"], FAST, seed=0,
                    calibration="platt", calibration_rows=later.assign(target=0))


def test_reference_distribution_quantiles() -> None:
    frame = pd.DataFrame({"a": np.arange(101, dtype=float), "b": np.nan})
    ref = reference_distribution(frame, ["a", "b"])
    q = ref["quantiles"]["a"]
    assert len(q) == ref["points"] and q[0] == 0 and q[-1] == 100
    assert q[len(q) // 2] == 50
    assert ref["quantiles"]["b"] == []


def test_fit_core_splits_tunes_and_checks_reweighting(project: Path) -> None:
    snaps = pd.read_parquet(project / "data/features/snapshots.parquet")
    features = json.loads((project / "data/features/manifest.json").read_text())["features"]
    directions = {f: 0 for f in features} | {"rejected_share_365d": 1}
    tp = TrainParams(
        n_test_cutoffs=1,
        lightgbm=dataclasses.replace(FAST, num_threads=2),
        tuning=dataclasses.replace(SPACE, n_trials=2),
        reweight="check",
        monotone_increasing=("rejected_share_365d",),
        calibration="auto",
    )
    model, split, tuned, check = fit(snaps, features, directions, tp, seed=1, horizon_days=42)
    gap = pd.Timedelta(days=42)
    assert max(split.valid) + gap <= min(split.calibration)
    assert max(split.calibration) + gap <= min(split.test)
    assert len(tuned.trials) == 2 and len(tuned.folds) == 2
    assert check["reweighted"] == (check["balanced_ap_mean"] > check["none_ap_mean"])
    assert isinstance(model, TrainedModel) and isinstance(model.calibrator, Calibrator)
    assert set(model.calibration_scores) == {"isotonic", "platt"}


# --- the shipped model: refit on every cutoff, calibrated out of time ---------------------


@pytest.mark.parametrize(
    ("best", "fitted", "rows", "expected"),
    [(100, 1000, 1000, 100), (100, 1000, 1500, 150), (100, 1000, 9000, 200),
     (100, 1000, 100, 50), (1, 10, 12, 2), (7, 0, 10, 14)],
)
def test_scaled_rounds(best: int, fitted: int, rows: int, expected: int) -> None:
    assert scaled_rounds(best, fitted, rows) == expected


@pytest.mark.parametrize("n_cutoffs", [1, 2, 5, 12, 20])
@pytest.mark.parametrize("n_blocks", [2, 3, 4, 7])
@pytest.mark.parametrize("horizon", [10, 28, 60])
def test_crossfit_blocks_against_brute_force(n_cutoffs: int, n_blocks: int,
                                             horizon: int) -> None:
    cutoffs = [pd.Timestamp("2024-01-01", tz="UTC") + pd.Timedelta(days=28 * i)
               for i in range(n_cutoffs)]
    blocks = crossfit_blocks(cutoffs[::-1], n_blocks, horizon)
    gap = pd.Timedelta(days=horizon)
    scored = [c for _, block in blocks for c in block]
    assert scored == sorted(scored) and len(set(scored)) == len(scored)
    for fit_cutoffs, block in blocks:
        assert fit_cutoffs
        # Brute force: every cutoff whose label window [c, c + H) ends before the block,
        # or that starts H after it; nothing else.
        for c in cutoffs:
            far = all(c + gap <= b or c >= b + gap for b in block)
            assert (c in fit_cutoffs) == far
    # With a gap shorter than the whole span, every cutoff is scored exactly once.
    if n_cutoffs >= 2 and horizon < 28 * (n_cutoffs - 1) // max(n_blocks, 1):
        assert len(scored) == n_cutoffs


def test_pipeline_ships_a_refit_and_reports_the_held_out_model(project: Path) -> None:
    info = json.loads((project / "models/model/training.json").read_text(encoding="utf-8"))
    snaps = pd.read_parquet(project / "data/features/snapshots.parquet")
    assert info["ships"] == "refit"
    shipped, held = info["shipped"], info["holdout"]
    # The shipped booster saw every cutoff, the latest included; the held-out one only
    # the train role's.
    all_cutoffs = sorted(pd.Timestamp(c).isoformat() for c in snaps["cutoff"].unique())
    assert shipped["cutoffs"] == all_cutoffs
    assert set(held["cutoffs"]) < set(all_cutoffs)
    assert max(info["split"]["test"]) in shipped["cutoffs"]
    assert max(info["split"]["test"]) not in held["cutoffs"]
    assert shipped["rows"] == len(snaps) and held["rows"] < shipped["rows"]
    assert shipped["rounds"] == scaled_rounds(held["rounds"], held["rows"], shipped["rows"])
    # Out-of-time calibration: every scored row came from a block the booster scoring it
    # never saw.
    assert shipped["oot_rows"] > 0 and len(shipped["crossfit_blocks"]) >= 2
    ship = load_model(project / "models/model")
    hold = load_holdout_model(project / "models/model")
    assert ship.best_iteration == shipped["rounds"]
    assert hold.best_iteration == held["rounds"]
    assert ship.booster.model_to_string() != hold.booster.model_to_string()
    rows = snaps.head(500)
    assert not np.allclose(ship.raw(rows), hold.raw(rows))


def test_holdout_loaders_fall_back_to_the_shipped_model(project: Path, tmp_path: Path) -> None:
    import shutil

    folder = tmp_path / "model"
    shutil.copytree(project / "models/model", folder)
    shutil.rmtree(folder / HOLDOUT_DIR)
    assert (load_holdout_model(folder).booster.model_to_string()
            == load_model(folder).booster.model_to_string())


# --- The model folder's facts (training.json) and the file-free training core. ---


def tiny_snapshots(seed: int = 0, n_cutoffs: int = 10, rows: int = 250) -> pd.DataFrame:
    """A small snapshot table in memory: two informative features among the plain ones."""
    from refundguard.model.evaluation import PLAIN_FEATURES

    rng = np.random.default_rng(seed)
    frames = []
    for cutoff in pd.date_range("2024-01-01", periods=n_cutoffs, freq="28D", tz="UTC"):
        x = rng.random((rows, len(PLAIN_FEATURES)))
        p = 1 / (1 + np.exp(-(3 * x[:, 0] + 2 * x[:, 1] - 4)))
        frame = pd.DataFrame(x, columns=list(PLAIN_FEATURES))
        frame.insert(0, "buyer_id", [f"b{i}" for i in range(rows)])
        frame.insert(1, "cutoff", cutoff)
        frame["target"] = (rng.random(rows) < p).astype(int)
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def tiny_params() -> Params:
    """Settings that train in a second on :func:`tiny_snapshots`."""
    return Params(
        train=TrainParams(
            lightgbm=FAST, tuning=TuningParams(n_trials=0), n_test_cutoffs=1,
            crossfit_blocks=2, monotone_increasing=("refunds_90d", "not_a_model_feature"),
        ),
        evaluate=EvaluateParams(ablation_max_train_rows=2000),
    )


def tiny_train(
    snapshots: pd.DataFrame, params: Params, known: pd.DataFrame | None = None
) -> TrainingResult:
    return train(
        snapshots,
        [c for c in snapshots.columns if c not in ("buyer_id", "cutoff", "target")],
        {"refunds_90d": 1},
        params.train,
        params.policy,
        seed=params.base.seed,
        horizon_days=28,
        period_days=28,
        known=known,
    )


def test_train_core_runs_in_memory_and_leaves_its_input_alone() -> None:
    snaps = tiny_snapshots()
    before = snaps.copy(deep=True)
    result = tiny_train(snaps, tiny_params())
    pd.testing.assert_frame_equal(snaps, before)
    assert result.shipped is not None and result.ships == "refit"
    assert result.model is result.shipped.model
    assert result.monotone_increasing == ("refunds_90d",)
    assert result.rows["test"] == 250 and result.rows["train"] > 0
    assert len(result.policy.bounds) == 3 and len(result.holdout_policy.bounds) == 3
    assert result.model.predict(snaps.head(5)).shape == (5,)
    info = result.info(run_id="r1", git_commit="c", data_hash="h", catalog_version="v")
    assert info.ships == "refit" and info.horizon == {"days": 28, "source": "params"}
    assert info.time_split == result.split
    assert info.lightgbm == result.tuned.params
    assert info.shipped["rounds"] == result.shipped.rounds


def test_train_core_without_refit_ships_the_held_out_model() -> None:
    params = tiny_params()
    params = dataclasses.replace(params, train=dataclasses.replace(params.train, refit=False))
    result = tiny_train(tiny_snapshots(), params)
    assert result.shipped is None and result.model is result.holdout
    assert result.policy == result.holdout_policy
    assert result.info(run_id="r", git_commit=None, data_hash=None,
                       catalog_version="v").shipped == {}


def _info() -> TrainingInfo:
    return TrainingInfo(
        run_id="r1",
        catalog_version="cat",
        split={"train": ["2024-01-01T00:00:00+00:00"], "valid": [], "calibration": [],
               "test": ["2024-03-01T00:00:00+00:00"]},
        horizon_days=28,
        params={"lightgbm": dataclasses.asdict(FAST), "seed": 1, "calibration": "auto"},
        features=("a", "b"),
        best_iteration=7,
        git_commit="abc",
        data_hash="def",
        tuning={"trials": [], "folds": [], "timed_out": False},
        monotone_increasing=("a",),
    )


def test_training_info_round_trips_through_json_with_the_same_keys() -> None:
    info = _info()
    data = json.loads(json.dumps(info.to_dict()))
    assert TrainingInfo.from_dict(data) == info
    assert set(data) == {
        "run_id", "git_commit", "data_hash", "catalog_version", "split", "horizon_days",
        "horizon", "period_days", "valid_metrics", "ships", "holdout", "shipped",
        "dropped_features", "tuning", "reweight", "monotone_increasing", "params",
        "features", "best_iteration", "calibration_brier", "calibration_method",
    }
    assert info.lightgbm == FAST
    assert info.time_split.test == (pd.Timestamp("2024-03-01", tz="UTC"),)


@pytest.mark.parametrize("key", TrainingInfo.REQUIRED)
def test_training_info_refuses_a_file_missing_a_required_key(key: str) -> None:
    data = _info().to_dict()
    del data[key]
    with pytest.raises(ModelError, match=f"missing {key}") as caught:
        TrainingInfo.from_dict(data)
    assert "\n" not in str(caught.value)


def test_saved_folder_reads_back(tmp_path: Path) -> None:
    result = tiny_train(tiny_snapshots(), tiny_params())
    info = result.info(run_id="r", git_commit=None, data_hash=None, catalog_version="v")
    save_model(result.holdout, tmp_path, info, policy=result.holdout_policy,
               reference=result.holdout_reference)
    loaded = load_model(tmp_path)
    assert loaded.features == result.holdout.features
    assert loaded.best_iteration == result.holdout.best_iteration
    assert load_policy(tmp_path) == result.holdout_policy
    written = load_training_info(tmp_path)
    assert written == info.for_model(result.holdout)
    assert set(model_files(tmp_path)) == {"booster", "calibration", "policy", "reference"}
    (tmp_path / "training.json").write_text("{}", encoding="utf-8")
    with pytest.raises(ModelError, match="missing"):
        load_model(tmp_path)


# --- Training at scale: every positive, a weighted share of the negatives. ---


@pytest.mark.parametrize("share", [0.1, 0.25, 0.5])
def test_sample_negatives_keeps_every_positive_and_weights_the_negatives(share: float) -> None:
    snaps = tiny_snapshots(rows=400)
    before = snaps.copy(deep=True)
    out = sample_negatives(snaps, share, seed=3)
    pd.testing.assert_frame_equal(snaps, before)
    positives, negatives = int(snaps["target"].sum()), int((snaps["target"] == 0).sum())
    assert int(out["target"].sum()) == positives
    assert int((out["target"] == 0).sum()) == round(negatives * share)
    weight = out[WEIGHT_COLUMN].to_numpy()
    assert set(weight[out["target"].to_numpy() == 1]) == {1.0}
    assert np.allclose(weight[out["target"].to_numpy() == 0], 1 / share)
    # The weighted class balance is the full data's.
    assert abs(weight.sum() - len(snaps)) < 1 / share
    # Seeded, and in the original order.
    pd.testing.assert_frame_equal(out, sample_negatives(snaps, share, seed=3))
    order = snaps.reset_index().merge(out, on=["buyer_id", "cutoff"])["index"].to_numpy()
    assert (np.diff(order) > 0).all()


def test_sample_negatives_with_share_one_is_the_frame_itself() -> None:
    snaps = tiny_snapshots(n_cutoffs=2)
    assert sample_negatives(snaps, 1.0, seed=0) is snaps


def test_weights_undo_the_sampling_in_the_boosters_scores() -> None:
    # Oracle: a booster fitted on all rows (mean prediction 0.219, the base rate). On 30%
    # of the negatives it predicts 0.426 on average without the weights and 0.267 with
    # them: the weights undo most of the shift; the rest is the sample's variance.
    snaps = tiny_snapshots(seed=5, n_cutoffs=8, rows=500)
    feats = list(snaps.columns[2:-1])
    full = fit_rounds(snaps, feats, FAST, 60, seed=1)
    sampled = sample_negatives(snaps, 0.3, seed=2)
    weighted = fit_rounds(sampled, feats, FAST, 60, seed=1)
    unweighted = fit_rounds(sampled.drop(columns=[WEIGHT_COLUMN]), feats, FAST, 60, seed=1)
    x = snaps.loc[:, feats].to_numpy(dtype="float64")
    mean = {name: float(np.mean(b.predict(x))) for name, b in
            (("full", full), ("weighted", weighted), ("unweighted", unweighted))}
    assert abs(mean["weighted"] - mean["full"]) < 0.25 * mean["full"], mean
    assert mean["unweighted"] - mean["full"] > 3 * abs(mean["weighted"] - mean["full"]), mean


def test_train_core_fits_on_a_weighted_sample_and_calibrates_on_every_row() -> None:
    params = tiny_params()
    params = dataclasses.replace(
        params, train=dataclasses.replace(params.train, negative_share=0.5)
    )
    snaps = tiny_snapshots(rows=400)
    sampled = tiny_train(snaps, params)
    full = tiny_train(snaps, tiny_params())
    assert sampled.shipped is not None and full.shipped is not None
    # The out-of-time rows that calibrate the shipped model are not sampled.
    assert sampled.shipped.oot_rows == full.shipped.oot_rows
    # The boosters saw fewer rows, so the refit's rounds (scaled to its rows) differ.
    assert sampled.model.booster.model_to_string() != full.model.booster.model_to_string()
    prob = sampled.model.predict(snaps)
    assert ((prob >= 0) & (prob <= 1)).all()
    # Calibrated on unsampled rows: mean probability near the base rate.
    assert abs(float(prob.mean()) - float(snaps["target"].mean())) < 0.05


# --- Known abusers as extra positives (train.known_abusers). ---


def _known_rows(snaps: pd.DataFrame, buyers: int, seed: int = 1) -> pd.DataFrame:
    """Known abusers' rows: ``buyers`` buyers active at a varying number of cutoffs."""
    rng = np.random.default_rng(seed)
    cutoffs = sorted(snaps["cutoff"].unique())
    frames = []
    for i in range(buyers):
        first = int(rng.integers(0, len(cutoffs)))
        for cutoff in cutoffs[first:]:
            row = snaps[snaps["cutoff"] == cutoff].iloc[[0]].copy()
            row["buyer_id"] = f"k{i}"
            # Known abusers look like the positives: high on the two informative features.
            row.iloc[0, 2:4] = 0.9 + 0.1 * rng.random(2)
            row["target"] = 1
            frames.append(row)
    return pd.concat(frames, ignore_index=True)


def test_with_known_adds_each_known_buyer_with_total_weight_one() -> None:
    snaps = tiny_snapshots(n_cutoffs=6, rows=50)
    known = _known_rows(snaps, buyers=7)
    frame = snaps[snaps["cutoff"].isin(sorted(snaps["cutoff"].unique())[:4])]
    before = (frame.copy(deep=True), known.copy(deep=True))
    out = with_known(frame, known)
    pd.testing.assert_frame_equal(frame, before[0])
    pd.testing.assert_frame_equal(known, before[1])
    added = out.iloc[len(frame):]
    # Only the known rows of the frame's own cutoffs, every one a positive.
    assert set(added["cutoff"]) <= set(frame["cutoff"])
    assert len(added) == int(known["cutoff"].isin(frame["cutoff"]).sum())
    assert (added["target"] == 1).all()
    # Brute force: each known buyer's weights sum to one; the frame's rows weigh one.
    totals = added.groupby("buyer_id")[WEIGHT_COLUMN].sum()
    assert np.allclose(totals.to_numpy(), 1.0)
    assert (out[WEIGHT_COLUMN].iloc[: len(frame)] == 1.0).all()


@pytest.mark.parametrize("known", [None, "empty", "other_cutoffs"])
def test_with_known_with_nothing_to_add_is_the_frame_itself(known: str | None) -> None:
    snaps = tiny_snapshots(n_cutoffs=4, rows=20)
    frame = snaps[snaps["cutoff"] == snaps["cutoff"].min()]
    extra = {
        None: None,
        "empty": snaps.iloc[:0],
        "other_cutoffs": _known_rows(snaps[snaps["cutoff"] > snaps["cutoff"].min()], 3),
    }[known]
    assert with_known(frame, extra) is frame


def test_with_known_keeps_the_sampled_negatives_weights() -> None:
    snaps = tiny_snapshots(n_cutoffs=4, rows=200)
    sampled = sample_negatives(snaps, 0.5, seed=0)
    out = with_known(sampled, _known_rows(snaps, buyers=3))
    np.testing.assert_array_equal(
        out[WEIGHT_COLUMN].to_numpy()[: len(sampled)], sampled[WEIGHT_COLUMN].to_numpy()
    )


def test_train_core_fits_on_known_abusers_but_never_validates_on_them() -> None:
    params = tiny_params()
    snaps = tiny_snapshots(rows=300)
    known = _known_rows(snaps, buyers=40)
    before = known.copy(deep=True)
    plain = tiny_train(snaps, params)
    result = tiny_train(snaps, params, known)
    pd.testing.assert_frame_equal(known, before)
    assert result.shipped is not None and plain.shipped is not None
    # The fits saw them: the known rows of the train cutoffs are counted and recorded.
    train_cutoffs = list(result.split.train)
    assert result.rows["known_abusers"] == int(known["cutoff"].isin(train_cutoffs).sum()) > 0
    info = result.info(run_id="r", git_commit=None, data_hash=None, catalog_version="v")
    assert info.holdout["known_abuser_rows"] == result.rows["known_abusers"]
    assert result.model.booster.model_to_string() != plain.model.booster.model_to_string()
    # ...but the out-of-time rows that calibrate and tier are the snapshot rows only.
    assert result.shipped.oot_rows == plain.shipped.oot_rows
    assert result.rows["test"] == plain.rows["test"] == 300
