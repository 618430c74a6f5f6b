"""Time consistency of features: does a feature mean the same at early and late cutoffs?

A platform's export starts at an arbitrary date, so at early cutoffs some features are
censored by that start (``account_age_days``, ``days_since_first_order``, long-window
counts) or grow with the calendar. A model trained on early snapshot rows learns
thresholds that mean something else when it scores at the latest cutoff. This module
compares the rows of the training cutoffs (the early side) with the rows of the latest
cutoffs (the late side) with three tests per feature:

1. **PSI** (population stability index) of the feature between the sides, with bins at
   the early side's quantiles, missing values in their own bin and a small epsilon for
   empty bins.
2. **Adversarial validation**: a small seeded LightGBM model tells early rows from late
   rows using all features (2-fold cross-fitted AUC, folds by buyer) and gives each
   feature's share of the total gain; each feature also gets its own single-feature
   adversarial AUC, the rank AUC of its raw value, max(AUC, 1 - AUC), with missing
   values placed at whichever end separates the sides better.
3. **Transfer**: the target is learned from the feature alone on the early side (the
   early rows' target rate in each of the feature's quantile bins, shrunk towards the
   overall rate) and that score's AUC is measured on held-out early rows (2-fold
   cross-fitting by buyer) and on the late rows (mean of the two fold models). This is
   the single-feature "time consistency" check of the IEEE-CIS fraud competition's
   winners: a feature whose meaning shifts scores well below its early AUC late, or no
   better than chance.

Decision rule. A feature **fails** when it drifts *and* its signal does not transfer:

- drifts: PSI > ``psi_max`` or single-feature adversarial AUC > ``adversarial_auc_max``;
- does not transfer: AUC late <= 0.5, or AUC late < AUC early - max(``min_transfer``,
  ``transfer_z`` standard errors of the difference (Hanley and McNeil)).

Why both: drift alone is common and harmless when the ranking survives (seasonal order
counts move in level but their high values still mean risk; the bin model then still
ranks late rows well), so drift alone would drop useful features. A drop in AUC alone
is mostly noise when the distribution did not move. Drift together with a lost signal is
the signature of a feature whose thresholds no longer mean the same. The noise term
keeps a few dozen late positives from failing features by chance; ``min_transfer`` sets
the smallest drop worth acting on when positives are plentiful.

Special cases. A feature with one value (or only missing values) over both sides passes
(AUCs 0.5, PSI 0). When the target has a single class on a side ("no positives late"),
the transfer test cannot be computed: the feature then fails only when its drift is
extreme (single-feature adversarial AUC >= ``extreme_adversarial_auc``, i.e. it nearly
tells the dates apart by itself), because such a feature cannot mean the same thing at
both ends, and otherwise passes with the reason saying so. Features named in ``exempt``
are measured and reported but always pass.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
from scipy.stats import rankdata

from refundguard.config import ConsistencyParams, TrainParams
from refundguard.config import check_consistency_params as check_params
from refundguard.errors import ConfigError, DataContractError, ModelError
from refundguard.features.timesplit import TimeSplit, split_cutoffs
from refundguard.paths import CONSISTENCY_DIR as CONSISTENCY_DIR
from refundguard.paths import CONSISTENCY_FILE_NAME

log = logging.getLogger(__name__)


# Where the check is written (the names' home is refundguard.paths); stages import them here.
CONSISTENCY_FILE = CONSISTENCY_FILE_NAME


# Added to each bin's share so that an empty bin on one side gives a large but finite PSI.
PSI_EPSILON = 1e-4


N_FOLDS = 2


@dataclass(frozen=True)
class FeatureCheck:
    """The three tests' figures for one feature, and the decision.

    Attributes:
        name: Feature name.
        psi: Population stability index, early vs late.
        adversarial_auc: The feature's own AUC at telling early rows from late rows.
        adversarial_importance: Its share of the adversarial model's total gain.
        auc_early: AUC of the single-feature model on held-out early rows.
        auc_late: AUC of the same model on the late rows.
        passed: False when the feature drifts and its signal does not transfer.
        reason: Empty for a stable feature, else a plain sentence with the figures.
    """

    name: str
    psi: float
    adversarial_auc: float
    adversarial_importance: float
    auc_early: float
    auc_late: float
    passed: bool
    reason: str


@dataclass(frozen=True)
class ConsistencyReport:
    """Result of :func:`check_time_consistency`.

    Attributes:
        checks: One check per feature, in the order given.
        adversarial_auc: Cross-fitted AUC of the all-feature early-vs-late model.
        early_cutoffs: Early cutoffs, ISO 8601.
        late_cutoffs: Late cutoffs, ISO 8601.
    """

    checks: tuple[FeatureCheck, ...]
    adversarial_auc: float
    early_cutoffs: tuple[str, ...]
    late_cutoffs: tuple[str, ...]

    def failed(self) -> list[str]:
        """Names of the features that failed, in check order.

        Returns:
            The names.
        """
        return [c.name for c in self.checks if not c.passed]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready mapping (``from_dict`` reads it back).

        Returns:
            The report as plain values, with ``failed`` listed for readers.
        """
        return {
            "adversarial_auc": self.adversarial_auc,
            "early_cutoffs": list(self.early_cutoffs),
            "late_cutoffs": list(self.late_cutoffs),
            "failed": self.failed(),
            "checks": [asdict(c) for c in self.checks],
        }

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> ConsistencyReport:
        """Read a mapping written by ``to_dict``.

        Args:
            raw: The mapping.

        Returns:
            The report.

        Raises:
            ModelError: A key is missing or holds a value of the wrong kind.
        """
        names = [f.name for f in fields(FeatureCheck)]
        try:
            checks = tuple(
                FeatureCheck(
                    name=str(c["name"]),
                    psi=float(c["psi"]),
                    adversarial_auc=float(c["adversarial_auc"]),
                    adversarial_importance=float(c["adversarial_importance"]),
                    auc_early=float(c["auc_early"]),
                    auc_late=float(c["auc_late"]),
                    passed=_as_bool(c["passed"]),
                    reason=str(c["reason"]),
                )
                for c in raw["checks"]
            )
            return cls(
                checks=checks,
                adversarial_auc=float(raw["adversarial_auc"]),
                early_cutoffs=tuple(str(c) for c in raw["early_cutoffs"]),
                late_cutoffs=tuple(str(c) for c in raw["late_cutoffs"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelError(
                f"consistency report is damaged ({type(exc).__name__}: {exc}); "
                f"each check needs {names}"
            ) from exc

    def to_frame(self) -> pd.DataFrame:
        """One row per feature, failures first, then by falling adversarial AUC.

        Returns:
            Columns of :class:`FeatureCheck`.
        """
        columns = [f.name for f in fields(FeatureCheck)]
        frame = pd.DataFrame([asdict(c) for c in self.checks], columns=columns)
        return frame.sort_values(
            ["passed", "adversarial_auc", "name"],
            ascending=[True, False, True],
            kind="stable",
            ignore_index=True,
        )


def _as_bool(value: object) -> bool:
    if isinstance(value, bool):
        return value
    raise TypeError(f"passed must be true or false, got {value!r}")


def consistency_sides(
    split: TimeSplit, n_late: int = 1
) -> tuple[tuple[pd.Timestamp, ...], tuple[pd.Timestamp, ...]]:
    """The early side (training cutoffs) and the late side (the latest ``n_late`` cutoffs).

    Args:
        split: The time split.
        n_late: Number of latest cutoffs, over all roles, on the late side.

    Returns:
        (early cutoffs, late cutoffs), each ascending; the late side never includes a
        training cutoff.

    Raises:
        ConfigError: ``n_late`` below 1.
    """
    if n_late < 1:
        raise ConfigError("params: consistency.n_late_cutoffs must be >= 1")
    later = sorted(set(split.valid) | set(split.calibration) | set(split.test))
    return tuple(sorted(split.train)), tuple(later[-n_late:])


def quantile_edges(values: np.ndarray, bins: int) -> np.ndarray:
    """Inner bin edges at the quantiles of the finite values, duplicates merged.

    Args:
        values: Reference values (non-finite ones are ignored).
        bins: Wanted number of bins.

    Returns:
        Ascending edges; bins are right-closed, (-inf, e1], (e1, e2], ..., (ek, inf), so
        that a feature that is mostly zero still keeps its zeros apart from the rest.
    """
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return np.empty(0)
    return np.unique(np.quantile(finite, np.linspace(0, 1, bins + 1)[1:-1]))


def bin_index(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Bin of each value; missing and infinite values get the extra bin ``len(edges) + 1``.

    Args:
        values: Values to bin.
        edges: Inner edges from :func:`quantile_edges`.

    Returns:
        Integer bins in [0, len(edges) + 1].
    """
    out = np.searchsorted(edges, values, side="left")
    out[~np.isfinite(values)] = edges.size + 1
    return out


def psi(expected: np.ndarray, actual: np.ndarray, bins: int = 10) -> float:
    """Population stability index of ``actual`` against ``expected``.

    Bins are ``expected``'s quantiles; missing values form their own bin; each bin's
    share gets ``PSI_EPSILON`` added so that empty bins stay finite.

    Args:
        expected: Reference values (the early side).
        actual: Compared values (the late side).
        bins: Number of quantile bins.

    Returns:
        sum((a - e) * ln(a / e)) over bins; 0 when either side is empty.
    """
    if expected.size == 0 or actual.size == 0:
        return 0.0
    edges = quantile_edges(expected, bins)
    n_bins = edges.size + 2
    e = np.bincount(bin_index(expected, edges), minlength=n_bins) / expected.size
    a = np.bincount(bin_index(actual, edges), minlength=n_bins) / actual.size
    e, a = e + PSI_EPSILON, a + PSI_EPSILON
    return float(np.sum((a - e) * np.log(a / e)))


def rank_auc(y: np.ndarray, score: np.ndarray) -> float:
    """ROC AUC from average ranks (ties count one half).

    Args:
        y: 0/1 outcomes.
        score: Scores, all finite.

    Returns:
        The AUC; 0.5 when either class is absent.
    """
    n_pos = int(np.sum(y == 1))
    n_neg = y.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return 0.5
    ranks = rankdata(score, method="average")
    return float((ranks[y == 1].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def separation_auc(side: np.ndarray, values: np.ndarray) -> float:
    """How well a raw value alone tells the sides apart, direction-free.

    Args:
        side: 0 for early rows, 1 for late rows.
        values: The feature.

    Returns:
        max(AUC, 1 - AUC), with missing values placed at whichever end gives more.
    """
    missing = ~np.isfinite(values)
    if not missing.any():
        auc = rank_auc(side, values)
        return max(auc, 1 - auc)
    best = 0.5
    for fill in (-np.inf, np.inf):
        auc = rank_auc(side, np.where(missing, fill, values))
        best = max(best, auc, 1 - auc)
    return best


def auc_standard_error(auc: float, n_pos: int, n_neg: int) -> float:
    """Hanley and McNeil's standard error of an AUC.

    Args:
        auc: The AUC.
        n_pos: Positives.
        n_neg: Negatives.

    Returns:
        The standard error; infinite when a class is absent.
    """
    if n_pos == 0 or n_neg == 0:
        return math.inf
    q1 = auc / (2 - auc)
    q2 = 2 * auc * auc / (1 + auc)
    var = (auc * (1 - auc) + (n_pos - 1) * (q1 - auc * auc) + (n_neg - 1) * (q2 - auc * auc)) / (
        n_pos * n_neg
    )
    return math.sqrt(max(var, 0.0))


def bin_rate_model(
    x: np.ndarray, y: np.ndarray, bins: int, prior_rows: float
) -> tuple[np.ndarray, np.ndarray]:
    """Learn the target rate of each quantile bin of one feature.

    Args:
        x: Feature values of the training rows.
        y: Their 0/1 targets.
        bins: Number of quantile bins.
        prior_rows: Pseudo-rows at the overall rate added to each bin.

    Returns:
        (edges, rate per bin); the last bin holds missing values.
    """
    edges = quantile_edges(x, bins)
    n_bins = edges.size + 2
    idx = bin_index(x, edges)
    prior = float(y.mean()) if y.size else 0.0
    pos = np.bincount(idx, weights=y.astype("float64"), minlength=n_bins)
    n = np.bincount(idx, minlength=n_bins).astype("float64")
    with np.errstate(invalid="ignore", divide="ignore"):
        rate = (pos + prior * prior_rows) / (n + prior_rows)
    # A bin no training row fell in (possible only without pseudo-rows) scores the prior.
    return edges, np.where(n + prior_rows > 0, rate, prior)


def _score(model: tuple[np.ndarray, np.ndarray], x: np.ndarray) -> np.ndarray:
    edges, rate = model
    return rate[bin_index(x, edges)]


@dataclass(frozen=True)
class _Sides:
    x: np.ndarray  # rows x features, float64, early rows first
    side: np.ndarray  # 0 early, 1 late
    y: np.ndarray  # target
    fold: np.ndarray  # 0 .. N_FOLDS - 1


def _folds(rows: pd.DataFrame, rng: np.random.Generator) -> np.ndarray:
    # Folds by buyer when known: one buyer's rows at several cutoffs are alike, so rows of
    # one buyer on both sides of a fold would flatter the held-out AUCs.
    if "buyer_id" in rows.columns:
        codes, uniques = pd.factorize(rows["buyer_id"], sort=True)
        order = rng.permutation(len(uniques))
        fold: np.ndarray = order[codes] % N_FOLDS
        return fold
    order = rng.permutation(len(rows)) % N_FOLDS
    return order


def _matrix(rows: pd.DataFrame, features: Sequence[str]) -> np.ndarray:
    try:
        # A copy: pandas may hand out a read-only view of the caller's data.
        x = np.array(rows.loc[:, list(features)].to_numpy(dtype="float64", na_value=np.nan))
    except (TypeError, ValueError) as exc:
        bad = [f for f in features if not pd.api.types.is_numeric_dtype(rows[f])]
        raise DataContractError(
            f"consistency: features must be numeric; not numeric: {bad or list(features)}"
        ) from exc
    # Infinities are treated as missing: they have no quantile and no rank distance.
    x[np.isinf(x)] = np.nan
    return x


def _prepare(
    rows: pd.DataFrame,
    features: Sequence[str],
    early: Sequence[pd.Timestamp],
    late: Sequence[pd.Timestamp],
    params: ConsistencyParams,
    seed: int,
) -> _Sides:
    missing = [c for c in ("cutoff", "target", *features) if c not in rows.columns]
    if missing:
        raise DataContractError(f"consistency: rows lack columns {missing}")
    if not early or not late:
        raise ConfigError("consistency: both early and late cutoffs are needed")
    overlap = sorted(set(early) & set(late))
    if overlap:
        raise ConfigError(
            f"consistency: early and late cutoffs overlap at {[str(c) for c in overlap]}"
        )
    rng = np.random.default_rng(seed)
    fold_all = _folds(rows, rng)
    picks = []
    for name, cutoffs in (("early", early), ("late", late)):
        idx = np.flatnonzero(rows["cutoff"].isin(list(cutoffs)).to_numpy())
        if idx.size == 0:
            raise DataContractError(
                f"consistency: no rows at the {name} cutoffs {[str(c) for c in cutoffs]}"
            )
        if idx.size > params.max_rows:
            idx = np.sort(rng.choice(idx, size=params.max_rows, replace=False))
        picks.append(idx)
    idx = np.concatenate(picks)
    sub = rows.iloc[idx]
    target = sub["target"].to_numpy()
    if pd.isna(target).any() or not np.isin(target, (0, 1)).all():
        raise DataContractError("consistency: target must hold only 0 and 1")
    return _Sides(
        x=_matrix(sub, features),
        side=np.repeat([0, 1], [picks[0].size, picks[1].size]),
        y=target.astype("int64"),
        fold=fold_all[idx],
    )


def _adversarial(
    s: _Sides, features: Sequence[str], params: ConsistencyParams, seed: int
) -> tuple[float, np.ndarray]:
    booster_params = {
        "objective": "binary",
        "learning_rate": params.learning_rate,
        "num_leaves": params.num_leaves,
        "min_data_in_leaf": params.min_data_in_leaf,
        "num_threads": params.num_threads,
        "seed": seed,
        # Same data, params and thread count give the same trees.
        "deterministic": True,
        "force_row_wise": True,
        "verbosity": -1,
    }
    oof = np.full(s.side.size, 0.5)
    gain = np.zeros(len(features))
    for k in range(N_FOLDS):
        train, held = s.fold != k, s.fold == k
        labels = s.side[train]
        if not held.any() or labels.size == 0 or labels.min() == labels.max():
            continue  # nothing to learn from one side only: the fold keeps 0.5
        # Positional feature names: LightGBM refuses some characters in names.
        data = lgb.Dataset(s.x[train], label=labels)
        booster = lgb.train(booster_params, data, num_boost_round=params.num_boost_round)
        oof[held] = booster.predict(s.x[held])
        gain += booster.feature_importance(importance_type="gain")
    total = gain.sum()
    return rank_auc(s.side, oof), gain / total if total > 0 else gain


def _transfer(
    x: np.ndarray, s: _Sides, params: ConsistencyParams
) -> tuple[float, float, float, int, int]:
    early, late = s.side == 0, s.side == 1
    xe, ye, fe = x[early], s.y[early], s.fold[early]
    oof = np.zeros(xe.size)
    late_score = np.zeros(int(late.sum()))
    models = 0
    for k in range(N_FOLDS):
        train = fe != k
        if not train.any():
            continue
        model = bin_rate_model(
            xe[train], ye[train], params.transfer_bins, params.transfer_prior_rows
        )
        oof[fe == k] = _score(model, xe[fe == k])
        late_score += _score(model, x[late])
        models += 1
    if models < N_FOLDS:
        # Every early row is in one fold (a single buyer): nothing is held out, so the
        # early rows are scored in-sample.
        model = bin_rate_model(xe, ye, params.transfer_bins, params.transfer_prior_rows)
        oof = _score(model, xe)
        late_score = _score(model, x[late])
        models = 1
    late_score /= models
    yl = s.y[late]
    auc_e, auc_l = rank_auc(ye, oof), rank_auc(yl, late_score)
    se = math.hypot(
        auc_standard_error(auc_e, int(ye.sum()), int(ye.size - ye.sum())),
        auc_standard_error(auc_l, int(yl.sum()), int(yl.size - yl.sum())),
    )
    return auc_e, auc_l, se, int(ye.sum()), int(yl.sum())


def _is_constant(x: np.ndarray) -> bool:
    missing = np.isnan(x)
    finite = x[~missing]
    if missing.any() and finite.size:
        return False
    return finite.size == 0 or bool(finite.min() == finite.max())


def _decide(
    name: str,
    x: np.ndarray,
    s: _Sides,
    importance: float,
    params: ConsistencyParams,
    exempt: bool,
) -> FeatureCheck:
    if _is_constant(x):
        return FeatureCheck(
            name=name,
            psi=0.0,
            adversarial_auc=0.5,
            adversarial_importance=importance,
            auc_early=0.5,
            auc_late=0.5,
            passed=True,
            reason="constant or missing on both sides; nothing to check.",
        )
    early, late = x[s.side == 0], x[s.side == 1]
    p = psi(early, late, params.psi_bins)
    adv = separation_auc(s.side, x)
    auc_e, auc_l, se, pos_e, pos_l = _transfer(x, s, params)
    neg_e, neg_l = int((s.side == 0).sum()) - pos_e, int((s.side == 1).sum()) - pos_l

    def check(passed: bool, reason: str) -> FeatureCheck:
        return FeatureCheck(name, p, adv, importance, auc_e, auc_l, passed, reason)

    drifts = p > params.psi_max or adv > params.adversarial_auc_max
    if not drifts:
        return check(True, "")
    drift = f"drifts (PSI {p:.3f}, adversarial AUC {adv:.3f})"
    if exempt:
        return check(True, f"exempt; {drift}.")
    empty = [
        text
        for text, n in (
            ("positives early", pos_e),
            ("positives late", pos_l),
            ("negatives early", neg_e),
            ("negatives late", neg_l),
        )
        if n == 0
    ]
    if empty:
        what = "No " + ", no ".join(empty)
        if adv >= params.extreme_adversarial_auc:
            return check(
                False,
                f"{what}, so the transfer test cannot run; it {drift} "
                f"and tells early from late rows by itself (AUC >= "
                f"{params.extreme_adversarial_auc}).",
            )
        return check(
            True, f"{what}, so the transfer test cannot run; it {drift}, short of extreme."
        )
    allowed = max(params.min_transfer, params.transfer_z * se)
    figures = f"AUC {auc_e:.3f} early, {auc_l:.3f} late"
    if auc_l <= 0.5:
        return check(
            False,
            f"It {drift} and its signal does not transfer: {figures} (no better than chance late).",
        )
    if auc_l < auc_e - allowed:
        return check(
            False,
            f"It {drift} and its signal does not transfer: {figures}, "
            f"a drop of {auc_e - auc_l:.3f} > {allowed:.3f}.",
        )
    return check(True, f"It {drift} but its signal transfers: {figures}.")


def check_time_consistency(
    rows: pd.DataFrame,
    features: Sequence[str],
    *,
    early_cutoffs: Sequence[pd.Timestamp],
    late_cutoffs: Sequence[pd.Timestamp],
    params: ConsistencyParams,
    seed: int,
    exempt: Sequence[str] = (),
) -> ConsistencyReport:
    """Check that each feature means the same at early and at late cutoffs.

    See the module docstring for the three tests and the decision rule.

    Args:
        rows: Snapshot rows: ``cutoff``, ``target`` (0/1), the features and, optionally,
            ``buyer_id`` (folds then keep each buyer's rows together). Not modified.
        features: Feature columns to check (numeric; missing values allowed).
        early_cutoffs: Cutoffs of the early side (normally the training cutoffs).
        late_cutoffs: Cutoffs of the late side (normally the latest cutoff).
        params: Thresholds and model settings.
        seed: Seed of the sampling, the folds and the adversarial model.
        exempt: Features that are measured but always pass.

    Returns:
        The report, one check per feature in the order of ``features``.

    Raises:
        ConfigError: Bad settings, overlapping sides, or an exempt name that is not a
            checked feature.
        DataContractError: Missing columns, a side with no rows, non-numeric features or
            a target other than 0/1.
    """
    check_params(params)
    features = list(features)
    if not features:
        raise ConfigError("consistency: no features to check")
    if len(set(features)) != len(features):
        raise ConfigError("consistency: a feature is listed twice")
    unknown = sorted(set(exempt) - set(features))
    if unknown:
        raise ConfigError(f"consistency: exempt features {unknown} are not checked features")
    s = _prepare(rows, features, early_cutoffs, late_cutoffs, params, seed)
    overall, gain_share = _adversarial(s, features, params, seed)
    checks = tuple(
        _decide(name, s.x[:, j], s, float(gain_share[j]), params, name in set(exempt))
        for j, name in enumerate(features)
    )
    return ConsistencyReport(
        checks=checks,
        adversarial_auc=overall,
        early_cutoffs=tuple(pd.Timestamp(c).isoformat() for c in sorted(early_cutoffs)),
        late_cutoffs=tuple(pd.Timestamp(c).isoformat() for c in sorted(late_cutoffs)),
    )


def check_snapshots(
    snapshots: pd.DataFrame,
    features: Sequence[str],
    *,
    horizon_days: int,
    train: TrainParams,
    params: ConsistencyParams,
    seed: int,
) -> tuple[ConsistencyReport, list[str]]:
    """The check on the features stage's rows, as the pipeline runs it.

    The early side is the training cutoffs of the time split the train stage will make;
    the late side is the latest cutoff(s) before the test window. The test window stays
    out, so that the features the model keeps are not chosen on the rows that judge it.

    Args:
        snapshots: The features stage's rows.
        features: The catalog's feature columns.
        horizon_days: H (the gap of the split).
        train: The ``train`` block (how many cutoffs each role has).
        params: The ``consistency`` block.
        seed: Random seed.

    Returns:
        The report, and the features to leave out (none when the check is disabled).
    """
    split = split_cutoffs(
        sorted(snapshots["cutoff"].unique()),
        horizon_days=horizon_days,
        n_valid=train.n_valid_cutoffs,
        n_test=train.n_test_cutoffs,
        n_calibration=train.n_calibration_cutoffs,
    )
    early, late = consistency_sides(
        dataclasses.replace(split, test=()), params.n_late_cutoffs
    )
    report = check_time_consistency(
        snapshots, features, early_cutoffs=early, late_cutoffs=late, params=params,
        seed=seed, exempt=[f for f in params.exempt if f in set(features)],
    )
    return report, report.failed() if params.enabled else []
