"""Typed parameters: params.yaml, grouped by stage, loaded once into frozen dataclasses.

Every stage's ``main()`` calls :func:`load_params` and hands plain values from these
dataclasses to its core functions; no raw dictionary travels further than this module.
"""

from __future__ import annotations

import dataclasses
import datetime
import math
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from refundguard import paths
from refundguard.contract.vocabulary import REFUND_TYPES, RULING_SOURCES, TIERS
from refundguard.errors import ConfigError
from refundguard.paths import PARAMS_FILE, PROJECT_ROOT


@dataclass(frozen=True)
class BaseParams:
    """Settings that every stage shares.

    Attributes:
        seed: Seed for every random generator, so that runs repeat exactly.
        timezone: Zone of naive timestamps in the input tables; converted to UTC on reading.
        first_cutoff: First snapshot date (local), or None to derive it from the data.
        last_cutoff: Last snapshot date (local), or None to derive it from the data.
        cutoff_step_days: Days between consecutive snapshot cutoffs.
        horizon_days: Label horizon H: a row's target is "labeled abuser within H days
            after the cutoff". Also the minimum gap between train, validation and test.
            None derives it from how late the data's labels arrive (see
            ``horizon_quantile`` and ``horizon_bounds_days``).
        horizon_quantile: With ``horizon_days`` None, H is this quantile of the delays
            from a labeled abuser's last refund request before the label to the label.
        horizon_bounds_days: The derived H is kept within [low, high] days.
        min_history_days: Days of data needed before the first derived cutoff.
    """

    seed: int = 42
    timezone: str = "Asia/Shanghai"
    first_cutoff: str | None = None
    last_cutoff: str | None = None
    cutoff_step_days: int = 28
    horizon_days: int | None = None
    horizon_quantile: float = 0.9
    horizon_bounds_days: tuple[int, int] = (14, 180)
    min_history_days: int = 120


@dataclass(frozen=True)
class DataParams:
    """Where the input tables are.

    Attributes:
        input_dir: Folder holding orders, refunds, reviews, labels and (optionally) buyers,
            as .csv, .xlsx or .parquet. Relative paths are taken from the project root.
        truth_file: Optional file of every buyer's true segment (simulated data only);
            read by evaluation alone. Missing file means no segment figures.
        encoding: CSV encoding, or "auto" to try UTF-8 (with or without BOM), then GB18030.
        mapping: Header and value mapping applied before validation: the name of a
            mapping shipped with refundguard (``zh_cn``: common Chinese export headers
            and values), a YAML file (relative to the project root), or None.
        columns: Extra header mapping, per table or ``all``: {header in your file:
            contract column}; takes precedence over ``mapping``.
        values: Extra value mapping, per table and contract column: {value in your file:
            contract value}; takes precedence over ``mapping``.
    """

    input_dir: str = "data/simulated"
    truth_file: str | None = "data/simulated/truth.parquet"
    encoding: str = "auto"
    mapping: str | None = "zh_cn"
    columns: dict[str, dict[str, str]] = field(default_factory=dict)
    values: dict[str, dict[str, dict[str, str]]] = field(default_factory=dict)

    def input_path(self) -> Path:
        """Input folder as an absolute path."""
        return _rooted(self.input_dir)

    def truth_path(self) -> Path | None:
        """Truth file as an absolute path, or None when not configured."""
        return _rooted(self.truth_file) if self.truth_file else None


@dataclass(frozen=True)
class SimulateParams:
    """Size and behaviour of the simulated marketplace.

    Attributes:
        worlds: Names of the worlds the simulate stage writes; [] turns the stage off
            (use that when ``data.input_dir`` points at your own tables).
        n_buyers: Number of buyer accounts.
        start: First day of activity (local date).
        days: Length of the simulated period in days.
        segment_shares: Share of buyers in each segment; the rest are ordinary honest buyers.
        label_coverage: Share of abusers who ever receive a label.
        label_delay_days: Range of days between abuse and its label decision.
        false_report_rate: Share of honest look-alike buyers wrongly labeled abusers.
        legit_label_rate: Share of honest buyers with a confirmed-legitimate label (0).
        traditional_share: Share of Chinese review texts written in traditional characters.
        english_share: Share of review texts in English.
        emoji_share: Share of review texts carrying emoji.
        history_before_days: Days of activity simulated before ``start`` and left out of
            the export (0: the platform launches at ``start``). Accounts keep their true,
            earlier registration; orders, refunds, reviews and labels start at ``start``.
        dormant_share: Share of abusers (whole rings count as one) who shop like honest
            buyers for ``dormant_days`` before their ``abuse_start``.
        dormant_days: Range of days of honest activity before a dormant abuser turns.
        close_on_label_share: Share of abusers whose account is closed at their first
            ruling (platform or manual label 1): they order nothing after it.
        office_share: Share of buyers, taken from ordinary honest ones, who work in
            offices of 5-40 colleagues that receive parcels at one address.
        office_device_share: Share of offices whose members also order from one shared
            device.
        office_card_share: Share of offices whose members sometimes pay with one company
            payment account.
        spring_festival_dip: Share of orders in the weeks around Spring Festival (春节)
            postponed to after it, when couriers stop (0: no trough).
        growth_per_year: Yearly growth of the active buyer base (0.5: 50% more each
            year, 0: flat), with accounts registering along the period; None keeps the
            built-in mix (65% of accounts older than the period, the rest opening
            uniformly during it).
        file_format: "parquet" or "csv".
    """

    worlds: tuple[str, ...] = ("default",)
    n_buyers: int = 20_000
    start: str = "2024-01-01"
    days: int = 730
    segment_shares: dict[str, float] = field(
        default_factory=lambda: {
            "size_bracketer": 0.05,
            "logistics_victim": 0.04,
            "picky_reviewer": 0.05,
            "household": 0.06,
            "refund_only_claimer": 0.03,
            "extortion_reviewer": 0.015,
            "wardrober": 0.02,
            "ring_member": 0.02,
        }
    )
    label_coverage: float = 0.6
    label_delay_days: tuple[int, int] = (14, 70)
    false_report_rate: float = 0.02
    legit_label_rate: float = 0.02
    traditional_share: float = 0.12
    english_share: float = 0.06
    emoji_share: float = 0.2
    history_before_days: int = 0
    dormant_share: float = 0.0
    dormant_days: tuple[int, int] = (90, 365)
    close_on_label_share: float = 0.0
    office_share: float = 0.0
    office_device_share: float = 0.3
    office_card_share: float = 0.2
    spring_festival_dip: float = 0.0
    growth_per_year: float | None = None
    file_format: Literal["parquet", "csv"] = "parquet"


@dataclass(frozen=True)
class ValidateParams:
    """Contract enforcement.

    Attributes:
        max_reject_share: A table with a larger share of quarantined rows stops the run.
        max_text_chars: Texts (reviews, reasons, categories, label sources) are cut to this
            many characters, after control characters other than newline and tab are
            removed; the row is kept.
        max_future_days: A time later than the run's clock plus this many days is
            quarantined ("in the future").
    """

    max_reject_share: float = 0.2
    max_text_chars: int = 2000
    max_future_days: float = 1.0


@dataclass(frozen=True)
class SentimentParams:
    """Review sentiment model, trained on the reviews' own star ratings.

    Attributes:
        ngram_min: Smallest character n-gram.
        ngram_max: Largest character n-gram.
        hash_bits: The n-grams are hashed into 2**hash_bits weights.
        C: Inverse regularisation strength of the logistic regression.
        max_iter: Iteration cap of the solver.
        min_labeled_reviews: Fewer rated reviews with text than this: no model is trained
            and every sentiment is missing (NaN), which the features allow.
        max_chars: Texts are cut to this many characters before featurising.
    """

    ngram_min: int = 1
    ngram_max: int = 3
    hash_bits: int = 20
    C: float = 4.0
    max_iter: int = 1000
    min_labeled_reviews: int = 200
    max_chars: int = 500


@dataclass(frozen=True)
class DemandParams:
    """Settings of the weakly supervised review demand model (``features.demand``).

    It lives here, with the other params, and is used by
    :mod:`refundguard.features.extortion`.

    Attributes:
        window_days: A request counts for a review posted at most this many days before
            or after it.
        max_rating: Reviews with at most this many stars are the training population.
        demand_types: Request types that count as a demand (besides partial refunds).
        by_buyer: Whether a request on another order of the same buyer counts, not only
            one on the reviewed order.
        min_per_class: Fewest reviews of each class needed to train; below it the model
            is untrained and scores NaN.
        ngram_min: Shortest character n-gram.
        ngram_max: Longest character n-gram.
        hash_bits: The model has ``2**hash_bits`` buckets.
        C: Inverse L2 regularisation strength.
        max_chars: Reviews are cut to this many characters.
    """

    window_days: float = 7.0
    max_rating: int = 2
    demand_types: tuple[str, ...] = ("compensation", "refund_only")
    by_buyer: bool = True
    min_per_class: int = 20
    ngram_min: int = 1
    # Bigrams, not trigrams: on the default world (14,673 weak labels) a fit took 0.45 s
    # instead of 3.0 s, with the same AUC on later reviews (0.740 against the weak labels,
    # 0.978 for extortion reviewers' reviews); the features stage fits one per refit.
    ngram_max: int = 2
    hash_bits: int = 18
    C: float = 1.0
    max_chars: int = 300

    def __post_init__(self) -> None:
        problems = []
        if not self.window_days >= 0:
            problems.append(f"window_days must be at least 0, got {self.window_days}")
        if not 1 <= self.max_rating <= 5:
            problems.append(f"max_rating must be 1 to 5, got {self.max_rating}")
        unknown = set(self.demand_types) - set(REFUND_TYPES)
        if unknown:
            problems.append(f"demand_types {sorted(unknown)} are not refund types {REFUND_TYPES}")
        if self.min_per_class < 1:
            problems.append(f"min_per_class must be at least 1, got {self.min_per_class}")
        if problems:
            raise ConfigError("demand model settings: " + "; ".join(problems))

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any] | None) -> DemandParams:
        """Parameters from a plain mapping (params.yaml block); missing keys keep defaults.

        Raises:
            ConfigError: On an unknown key or an unusable value.
        """
        values = dict(values or {})
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise ConfigError(f"unknown demand model settings: {sorted(unknown)}")
        if "demand_types" in values:
            values["demand_types"] = tuple(values["demand_types"])
        try:
            return cls(**values)
        except TypeError as exc:  # a value of the wrong type, compared or iterated
            raise ConfigError(f"demand model settings: {exc}") from exc



@dataclass(frozen=True)
class FeaturesParams:
    """Per-buyer, point-in-time features.

    Attributes:
        windows_days: Look-back windows [T - w, T) for counts and rates.
        fast_refund_hours: A request this soon after delivery counts as "fast".
        active_days: A buyer is scored at a cutoff if they ordered in this many days before it.
        link_max_accounts: A device, address or payment id used by more accounts than this
            (a parcel locker, a pickup point) links nobody.
        history_cap_days: Features that measure a length of history (account age, days
            since the first or last order) are capped here, so that they mean the same at
            every cutoff: an export starts at an arbitrary date, and without the cap a
            buyer's history looks short at the early cutoffs only because the data does.
            Cutoffs closer than this to the data's start are not used.
        engine: "local" (one process, the default) or "spark" (the same features
            computed per bucket of buyers on Apache Spark; see the ``spark`` block).
        extortion_lexicon: A YAML file of extortion patterns merged over the shipped
            lexicon (same shape; relative paths are taken from the project root), or
            None for the shipped lexicon alone.
        demand_refit_every: The review demand model is trained again every this many
            cutoffs (laid back from the last one); each cutoff uses the latest model
            trained on data before it.
        demand: Settings of the weakly supervised review demand model.
        known_abuser_sources: Label sources whose abuser decisions make a known abuser
            a training positive (``train.known_abusers``); None: every source. A
            merchant's report is an interested party's claim after a dispute, not a
            ruling: on the mature world, honest picky reviewers that merchants had
            reported were 2% of the known abusers, and fitting on them doubled the picky
            reviewers flagged at 1% FPR (0.012 -> 0.021; 0.008 with rulings only).
            Decisions without a source, and labels with no source column, always count.
    """

    windows_days: tuple[int, ...] = (30, 90, 365)
    fast_refund_hours: float = 24.0
    active_days: int = 365
    link_max_accounts: int = 30
    history_cap_days: int = 120
    engine: Literal["local", "spark"] = "local"
    extortion_lexicon: str | None = None
    demand_refit_every: int = 4
    demand: DemandParams = field(default_factory=DemandParams)
    known_abuser_sources: tuple[str, ...] | None = RULING_SOURCES

    def __post_init__(self) -> None:
        if self.demand_refit_every < 1:
            raise ConfigError("params: features.demand_refit_every must be >= 1")
        path = self.lexicon_path()
        if path is not None and not path.is_file():
            raise ConfigError(f"params: features.extortion_lexicon {path} does not exist")

    def lexicon_path(self) -> Path | None:
        """The user's extortion lexicon as an absolute path, or None."""
        return _rooted(self.extortion_lexicon) if self.extortion_lexicon else None


@dataclass(frozen=True)
class SparkParams:
    """The Spark session of ``features.engine: spark``.

    Attributes:
        master: Spark master URL: ``local[*]``, ``local[2]``, ``yarn``, ``k8s://...``.
        partitions: Shuffle partitions and buyer buckets (about 50,000-200,000 buyers
            per bucket).
        conf: More Spark settings, passed through as they are
            (e.g. ``{spark.driver.memory: 4g}``).
    """

    master: str = "local[*]"
    partitions: int = 8
    conf: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class LightGBMParams:
    """LightGBM booster settings (see LightGBM's parameter docs for each)."""

    learning_rate: float = 0.05
    num_leaves: int = 31
    min_data_in_leaf: int = 40
    feature_fraction: float = 0.8
    bagging_fraction: float = 0.8
    bagging_freq: int = 1
    lambda_l2: float = 1.0
    max_bin: int = 255
    num_boost_round: int = 2000
    early_stopping_rounds: int = 100
    num_threads: int = 2


@dataclass(frozen=True)
class SearchRange:
    """Range of one LightGBM parameter in the tuning search.

    Attributes:
        low: Smallest value tried.
        high: Largest value tried.
        log: Sample on a log scale (for rates and regularisation strengths).
        integer: The parameter takes whole numbers (num_leaves, min_data_in_leaf).
    """

    low: float
    high: float
    log: bool = False
    integer: bool = False


def _default_space() -> dict[str, SearchRange]:
    return {
        "learning_rate": SearchRange(0.03, 0.15, log=True),
        "num_leaves": SearchRange(8, 96, log=True, integer=True),
        "min_data_in_leaf": SearchRange(20, 400, log=True, integer=True),
        "feature_fraction": SearchRange(0.5, 1.0),
        "lambda_l2": SearchRange(0.01, 30.0, log=True),
    }


@dataclass(frozen=True)
class TuningParams:
    """Seeded hyper-parameter search, scored by rolling (prequential) validation.

    Attributes:
        n_trials: Optuna TPE trials; 0 (the default) keeps ``train.lightgbm`` as it is,
            so that an explicit setting (``dvc exp run -S train.lightgbm.num_leaves=15``)
            always takes effect. With trials, the search overrides the searched keys.
        timeout_seconds: Wall-time budget of the search. Trials stop early when it runs
            out; the model then depends on the machine's speed, so the run logs a warning
            and records how many trials finished.
        n_folds: Rolling validation cutoffs; each fold trains on the cutoffs at least H
            before its validation cutoff.
        max_train_rows: Training rows per fold, at most (every positive kept, negatives
            sampled with the seed), which bounds the search's cost on big data.
        search_space: Parameter ranges; keys are ``train.lightgbm`` fields.
    """

    n_trials: int = 0
    timeout_seconds: float = 900.0
    n_folds: int = 3
    max_train_rows: int = 60_000
    search_space: dict[str, SearchRange] = field(default_factory=_default_space)


@dataclass(frozen=True)
class TrainParams:
    """Time split, tuning, booster, monotone constraints and calibration.

    Attributes:
        n_valid_cutoffs: Cutoffs in the validation window (early stopping).
        n_calibration_cutoffs: Cutoffs in the calibration window, after the validation
            window by at least H (calibration and the choice of policy thresholds).
        n_test_cutoffs: Cutoffs in the test window, the last ones with mature labels.
        lightgbm: Booster settings (the starting point of the search).
        tuning: The hyper-parameter search.
        reweight: Class weighting: "none"; "balanced" (positives weighted by
            negatives / positives); or "check", which keeps "balanced" only if it raises
            the rolling-validation average precision.
        monotone_increasing: Features whose higher values never lower the risk, enforced
            as LightGBM monotone constraints (each must have catalog direction +1).
        calibration: "isotonic", "platt", or "auto" (the lower Brier score in a 5-fold
            cross-validation inside the calibration window).
        refit: Ship a booster refit on every cutoff (the latest included) rather than the
            held-out one that the evaluation judges.
        crossfit_blocks: Blocks of consecutive cutoffs for the shipped model's
            out-of-time calibration: each block is scored by a booster fitted on the
            cutoffs at least H away from it.
        negative_share: Share of the negative training rows the boosters fit on (every
            positive kept; negatives sampled with the seed, each kept one weighted
            1 / share so that the booster still sees the full data's class balance).
            1.0 keeps every row. For data too large to fit at once; calibration and
            tiers are always fitted on unsampled rows.
        known_abusers: "positive": the boosters also fit on the rows of buyers already
            labeled abusers at each cutoff (the features stage's ``known_abusers``
            table), as positives, each such buyer weighted 1 / (their rows among the
            fitted cutoffs) so that a buyer counts once however long they stay active;
            "drop": those rows are left out. Validation, calibration, tiers and the
            evaluation never see them (they are never scored).
    """

    n_valid_cutoffs: int = 1
    n_calibration_cutoffs: int = 1
    n_test_cutoffs: int = 2
    lightgbm: LightGBMParams = field(default_factory=LightGBMParams)
    tuning: TuningParams = field(default_factory=TuningParams)
    reweight: Literal["none", "balanced", "check"] = "check"
    monotone_increasing: tuple[str, ...] = (
        "refund_only_share_365d",
        "rejected_share_365d",
        "extortion_review_share_365d",
        "linked_known_abusers",
    )
    calibration: Literal["auto", "isotonic", "platt"] = "auto"
    refit: bool = True
    crossfit_blocks: int = 4
    negative_share: float = 1.0
    known_abusers: Literal["positive", "drop"] = "positive"


@dataclass(frozen=True)
class EvaluateParams:
    """Test-period metrics.

    Attributes:
        top_share: Precision is measured in this top share of buyers by score.
        max_fpr: Recall is measured at this false-positive rate.
        baseline_feature: Feature the rule baseline ranks buyers by.
        baseline_threshold: Value of that feature from which the rule flags a buyer.
        ablation: Retrain without each feature group and report the drop in average
            precision (one extra training per group).
        ablation_max_train_rows: Training rows of each ablation variant, at most (all
            positives kept, negatives sampled), which bounds its cost on big data.
        report_lang: Language the HTML report opens in (both are on the page); auto: zh
            for a China, Hong Kong, Macau or Taiwan base.timezone, else en.
    """

    top_share: float = 0.01
    max_fpr: float = 0.01
    baseline_feature: str = "refund_rate_count_90d"
    baseline_threshold: float = 0.5
    ablation: bool = True
    ablation_max_train_rows: int = 100_000
    report_lang: Literal["auto", "zh", "en"] = "auto"


def _default_prevented() -> dict[str, float]:
    return dict(zip(TIERS, (0.0, 0.3, 0.85, 1.0), strict=True))


def _default_friction() -> dict[str, float]:
    return dict(zip(TIERS, (0.0, 0.1, 1.0, 4.0), strict=True))


@dataclass(frozen=True)
class PolicyParams:
    """Costs and limits from which the tier thresholds are chosen on validation data.

    A buyer placed in tier t costs ``abuse_loss * (1 - loss_prevented[t])`` if they are
    an abuser and ``friction_cost * friction[t]`` if they are honest. The thresholds
    minimise the total on the calibration window, subject to the two limits.

    Attributes:
        abuse_loss: Expected loss (CNY) from an abusive refund that goes through.
        friction_cost: Cost (CNY equivalent: delay, churn risk, agent time) of a manual
            review to an honest buyer.
        loss_prevented: Share of the abuse loss each tier prevents.
        friction: Friction of each tier to an honest buyer, in units of friction_cost.
        max_honest_above_standard: Cap on the share of honest buyers placed in review or
            restrict.
        review_capacity_per_day: Cases (review and restrict) the review team handles per
            day; a cutoff's flagged buyers are spread over ``base.cutoff_step_days``.
        bounds: Fixed lower bounds of standard, review and restrict, instead of choosing
            them (null: choose).
    """

    abuse_loss: float = 150.0
    friction_cost: float = 10.0
    loss_prevented: dict[str, float] = field(default_factory=_default_prevented)
    friction: dict[str, float] = field(default_factory=_default_friction)
    max_honest_above_standard: float = 0.01
    review_capacity_per_day: float = 10.0
    bounds: tuple[float, ...] | None = None


@dataclass(frozen=True)
class ScoreParams:
    """Batch scoring.

    Attributes:
        chunk_size: Buyers scored per chunk.
        max_days_after_data: ``score --as-of`` may be at most this many days after the
            data's last event; later, every buyer would look inactive and low-risk.
    """

    chunk_size: int = 20_000
    max_days_after_data: float = 7.0

    def __post_init__(self) -> None:
        days = self.max_days_after_data
        if not days >= 0:
            raise ConfigError(f"params: score.max_days_after_data must be >= 0, got {days!r}")


@dataclass(frozen=True)
class RegistryParams:
    """MLflow Model Registry: where the export stage registers the scorer, and the gate.

    Attributes:
        name: Registered model name (``models:/<name>@champion``).
        metric: Test metric of the champion/challenger gate (higher is better).
        min_improvement: A candidate becomes champion only if its metric beats the
            champion's by more than this, on the same test window.
    """

    name: str = "refundguard"
    metric: str = "average_precision"
    min_improvement: float = 0.0


@dataclass(frozen=True)
class ConsistencyParams:
    """Settings of the time-consistency check.

    Attributes:
        enabled: Whether the pipeline runs the check (the core runs regardless).
        psi_max: A feature drifts when its PSI (early vs late) exceeds this.
        adversarial_auc_max: A feature drifts when its single-feature adversarial AUC
            exceeds this.
        min_transfer: Smallest drop from early to late single-feature AUC that counts as
            a lost signal.
        transfer_z: The drop must also exceed this many standard errors of the difference
            of the two AUCs, so that few late positives do not fail features by chance.
        extreme_adversarial_auc: With no positives on a side, a feature fails only when
            its single-feature adversarial AUC reaches this.
        max_rows: Rows sampled (seeded) per side at most.
        n_late_cutoffs: How many of the latest cutoffs form the late side
            (see :func:`consistency_sides`).
        psi_bins: Quantile bins of the PSI.
        transfer_bins: Quantile bins of the single-feature transfer model.
        transfer_prior_rows: Pseudo-rows of the overall target rate added to each bin of
            the transfer model, so that thin bins do not score extremes.
        num_boost_round: Boosting rounds of the adversarial model.
        num_leaves: Leaves per tree of the adversarial model.
        learning_rate: Learning rate of the adversarial model.
        min_data_in_leaf: Smallest leaf of the adversarial model.
        num_threads: LightGBM threads.
        exempt: Features measured and reported but never left out.
    """

    enabled: bool = True
    psi_max: float = 0.25
    adversarial_auc_max: float = 0.60
    min_transfer: float = 0.02
    transfer_z: float = 2.0
    extreme_adversarial_auc: float = 0.95
    max_rows: int = 100_000
    n_late_cutoffs: int = 1
    psi_bins: int = 10
    transfer_bins: int = 10
    transfer_prior_rows: float = 20.0
    num_boost_round: int = 100
    num_leaves: int = 15
    learning_rate: float = 0.1
    min_data_in_leaf: int = 20
    num_threads: int = 2
    exempt: tuple[str, ...] = ()


@dataclass(frozen=True)
class Params:
    """Every block of params.yaml."""

    base: BaseParams = field(default_factory=BaseParams)
    data: DataParams = field(default_factory=DataParams)
    simulate: SimulateParams = field(default_factory=SimulateParams)
    validate: ValidateParams = field(default_factory=ValidateParams)
    sentiment: SentimentParams = field(default_factory=SentimentParams)
    features: FeaturesParams = field(default_factory=FeaturesParams)
    spark: SparkParams = field(default_factory=SparkParams)
    consistency: ConsistencyParams = field(default_factory=ConsistencyParams)
    train: TrainParams = field(default_factory=TrainParams)
    evaluate: EvaluateParams = field(default_factory=EvaluateParams)
    policy: PolicyParams = field(default_factory=PolicyParams)
    score: ScoreParams = field(default_factory=ScoreParams)
    registry: RegistryParams = field(default_factory=RegistryParams)


def _rooted(path: str) -> Path:
    p = Path(path)
    return p if p.is_absolute() else PROJECT_ROOT / p


def _convert(value: Any, tp: Any, where: str) -> Any:
    """Turn a YAML value into the annotated type, or raise ConfigError naming the key."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        if not isinstance(value, dict):
            raise ConfigError(f"params: '{where}' must be a mapping, got {value!r}")
        return _build(tp, value, where)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _convert(value, inner[0], where)
    if origin is Literal:
        if value not in args:
            raise ConfigError(f"params: '{where}' must be one of {list(args)}, got {value!r}")
        return value
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise ConfigError(f"params: '{where}' must be a list, got {value!r}")
        item_t = args[0]
        return tuple(_convert(v, item_t, f"{where}[{i}]") for i, v in enumerate(value))
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"params: '{where}' must be a mapping, got {value!r}")
        return {str(k): _convert(v, args[1], f"{where}.{k}") for k, v in value.items()}
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"params: '{where}' must be a number, got {value!r}")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"params: '{where}' must be a whole number, got {value!r}")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"params: '{where}' must be true or false, got {value!r}")
        return value
    if tp is str:
        if isinstance(value, datetime.date):
            # YAML reads an unquoted 2024-05-01 as a date; it means the same text.
            return value.isoformat()
        if not isinstance(value, str | int | float) or isinstance(value, bool):
            raise ConfigError(f"params: '{where}' must be text, got {value!r}")
        return str(value)
    return value


def _build(cls: type, raw: dict[str, Any], where: str) -> Any:
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - known)
    if unknown:
        prefix = f"{where}." if where else ""
        raise ConfigError(f"params: unknown key '{prefix}{unknown[0]}' (known: {sorted(known)})")
    kwargs = {
        name: _convert(value, hints[name], f"{where}.{name}" if where else name)
        for name, value in raw.items()
    }
    return cls(**kwargs)


def params_from_dict(raw: dict[str, Any]) -> Params:
    """Build :class:`Params` from a parsed params.yaml, defaults filling what is absent.

    Args:
        raw: The parsed YAML mapping.

    Returns:
        The typed parameters.

    Raises:
        ConfigError: An unknown key or a value of the wrong type, named in the message.
    """
    params: Params = _build(Params, raw or {}, "")
    _check(params)
    return params


def load_params(path: Path = PARAMS_FILE) -> Params:
    """Read params.yaml into typed, frozen parameters.

    Args:
        path: The YAML file.

    Returns:
        The typed parameters.

    Raises:
        ConfigError: The file is missing or unreadable, or holds a bad key or value.
    """
    try:
        raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        if Path(path) == paths.PARAMS_FILE and not paths.PROJECT_FOUND:
            raise ConfigError(paths.missing_project_message(Path.cwd())) from exc
        raise ConfigError(f"params file not found: {path}") from exc
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read params file {path}: {exc}") from exc
    if raw is not None and not isinstance(raw, dict):
        raise ConfigError(f"params file {path} must hold a mapping of stage blocks")
    return params_from_dict(raw or {})


def _check(p: Params) -> None:
    check_consistency_params(p.consistency)
    b = p.base
    if (b.horizon_days is not None and b.horizon_days <= 0) or b.cutoff_step_days <= 0:
        raise ConfigError("params: base.horizon_days and base.cutoff_step_days must be > 0")
    if not 0 < b.horizon_quantile <= 1 or not 1 <= b.horizon_bounds_days[0] <= (
        b.horizon_bounds_days[1]
    ):
        raise ConfigError(
            "params: base.horizon_quantile must be in (0, 1] and base.horizon_bounds_days "
            "[low, high] with 1 <= low <= high"
        )
    if p.features.history_cap_days < 1:
        raise ConfigError("params: features.history_cap_days must be >= 1")
    if p.spark.partitions < 1:
        raise ConfigError("params: spark.partitions must be >= 1")
    if not 0 < p.validate.max_reject_share <= 1:
        raise ConfigError("params: validate.max_reject_share must be in (0, 1]")
    _check_policy(p.policy)
    reg = p.registry
    if not math.isfinite(reg.min_improvement) or not reg.name or any(
        c in reg.name for c in "/@:"
    ):
        raise ConfigError(
            "params: registry.min_improvement must be a finite number and registry.name a "
            "non-empty name without '/', '@' or ':'"
        )
    t = p.train
    if min(t.n_valid_cutoffs, t.n_calibration_cutoffs, t.n_test_cutoffs) < 1:
        raise ConfigError("params: train.n_*_cutoffs must each be >= 1")
    if t.crossfit_blocks < 2:
        raise ConfigError("params: train.crossfit_blocks must be >= 2")
    if not 0.0 < t.negative_share <= 1.0:
        raise ConfigError(
            f"params: train.negative_share must be in (0, 1], got {t.negative_share}"
        )
    if t.tuning.n_trials < 0 or t.tuning.n_folds < 1 or t.tuning.max_train_rows < 1:
        raise ConfigError(
            "params: train.tuning needs n_trials >= 0, n_folds >= 1 and max_train_rows >= 1"
        )
    for name, rng in t.tuning.search_space.items():
        if name not in _TUNABLE:
            raise ConfigError(
                f"params: train.tuning.search_space.{name} is not a tunable LightGBM "
                f"setting (tunable: {sorted(_TUNABLE)})"
            )
        if not rng.low <= rng.high or (rng.log and rng.low <= 0):
            raise ConfigError(
                f"params: train.tuning.search_space.{name} needs low <= high (and low > 0 "
                "on a log scale)"
            )
    if not 0 < p.evaluate.top_share < 1 or not 0 < p.evaluate.max_fpr < 1:
        raise ConfigError("params: evaluate.top_share and evaluate.max_fpr must be in (0, 1)")
    if sum(p.simulate.segment_shares.values()) >= 1:
        raise ConfigError("params: simulate.segment_shares must add up to less than 1")
    if p.sentiment.ngram_min < 1 or p.sentiment.ngram_max < p.sentiment.ngram_min:
        raise ConfigError("params: sentiment n-gram range must satisfy 1 <= min <= max")


_TUNABLE = frozenset(
    {
        "learning_rate",
        "num_leaves",
        "min_data_in_leaf",
        "feature_fraction",
        "bagging_fraction",
        "lambda_l2",
        "max_bin",
    }
)


def _check_policy(pol: PolicyParams) -> None:
    tiers = TIERS
    for name, table in (("loss_prevented", pol.loss_prevented), ("friction", pol.friction)):
        if sorted(table) != sorted(tiers):
            raise ConfigError(f"params: policy.{name} needs exactly the tiers {list(tiers)}")
        values = [table[t] for t in tiers]
        if any(v < 0 for v in values) or values != sorted(values):
            raise ConfigError(
                f"params: policy.{name} must be >= 0 and must not decrease from trusted "
                "to restrict"
            )
    if max(pol.loss_prevented.values()) > 1:
        raise ConfigError("params: policy.loss_prevented values must be at most 1")
    if pol.abuse_loss <= 0 or pol.friction_cost <= 0:
        raise ConfigError("params: policy.abuse_loss and policy.friction_cost must be > 0")
    if not 0 < pol.max_honest_above_standard <= 1 or pol.review_capacity_per_day <= 0:
        raise ConfigError(
            "params: policy.max_honest_above_standard must be in (0, 1] and "
            "policy.review_capacity_per_day > 0"
        )
    if pol.bounds is not None and not (
        len(pol.bounds) == 3 and 0 < pol.bounds[0] < pol.bounds[1] < pol.bounds[2] < 1
    ):
        raise ConfigError(
            "params: policy.bounds must be null or three probabilities 0 < standard < "
            "review < restrict < 1"
        )


def check_consistency_params(params: ConsistencyParams) -> None:
    """Refuse settings the check cannot use.

    Args:
        params: The settings.

    Raises:
        ConfigError: A value out of range, named in the message.
    """
    problems = []
    if not params.psi_max > 0:
        problems.append("psi_max must be > 0")
    if not 0.5 <= params.adversarial_auc_max < 1:
        problems.append("adversarial_auc_max must be in [0.5, 1)")
    if not 0.5 < params.extreme_adversarial_auc <= 1:
        problems.append("extreme_adversarial_auc must be in (0.5, 1]")
    if not 0 <= params.min_transfer < 0.5:
        problems.append("min_transfer must be in [0, 0.5)")
    if not params.transfer_z >= 0:
        problems.append("transfer_z must be >= 0")
    if params.max_rows < 2:
        problems.append("max_rows must be >= 2")
    if params.n_late_cutoffs < 1:
        problems.append("n_late_cutoffs must be >= 1")
    if params.psi_bins < 2 or params.transfer_bins < 2:
        problems.append("psi_bins and transfer_bins must be >= 2")
    if not params.transfer_prior_rows >= 0:
        problems.append("transfer_prior_rows must be >= 0")
    if params.num_boost_round < 1 or params.num_leaves < 2 or params.min_data_in_leaf < 1:
        problems.append("num_boost_round >= 1, num_leaves >= 2 and min_data_in_leaf >= 1")
    if not params.learning_rate > 0 or params.num_threads < 1:
        problems.append("learning_rate must be > 0 and num_threads >= 1")
    if problems:
        raise ConfigError(f"params: consistency: {'; '.join(problems)}")
