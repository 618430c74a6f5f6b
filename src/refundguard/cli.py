"""The ``refundguard`` command line.

Every documented error (:class:`refundguard.errors.RefundGuardError`) and every missing
or unreadable file is reported as one line on stderr with exit code 2; no traceback.
``refundguard --quiet <command>`` switches progress bars and progress lines off.
"""

from __future__ import annotations

import functools
import logging
import os
import re
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from refundguard import paths
from refundguard import progress as bars
from refundguard.errors import InputError, RefundGuardError

app = typer.Typer(
    name="refundguard",
    help="Find buyers who abuse after-sales service, with evidence a person can check.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

F = TypeVar("F", bound=Callable[..., Any])
ParamsOpt = Annotated[Path, typer.Option("--params", help="params.yaml to read.")]


@app.callback()
def _options(
    quiet: Annotated[
        bool,
        typer.Option(
            "--quiet", "-q", help="No progress bars or progress lines; errors and warnings stay."
        ),
    ] = False,
) -> None:
    """Options of every command.

    Args:
        quiet: Switch progress output off (sets REFUNDGUARD_QUIET=1 for the stages).
    """
    if quiet:
        os.environ[bars.ENV_QUIET] = "1"


def _fail(message: str) -> None:
    typer.echo(f"refundguard: error: {message}", err=True)
    raise typer.Exit(code=2)


def _warn(message: str) -> None:
    typer.echo(f"refundguard: warning: {message}", err=True)


def friendly(func: F) -> F:
    """Turn documented errors into one stderr line and exit code 2.

    Args:
        func: A command.

    Returns:
        The wrapped command.
    """

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        level = logging.WARNING if bars.quiet() else logging.INFO
        logging.basicConfig(level=level, format="%(message)s", stream=sys.stderr)
        # MLflow's download progress bars say nothing useful in a batch job's log.
        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
        try:
            return func(*args, **kwargs)
        except RefundGuardError as exc:
            _fail(str(exc))
        except FileNotFoundError as exc:
            name = exc.filename or str(exc)
            _fail(f"file not found: {name} (run the earlier stages first: `dvc repro`)")
        except PermissionError as exc:
            _fail(f"permission denied: {exc.filename or exc}")
        except KeyboardInterrupt:
            _fail("interrupted")

    return wrapper  # type: ignore[return-value]


@app.command()
@friendly
def simulate(
    out: Annotated[Path, typer.Option(help="Folder to write the tables to.")] = paths.SIMULATED_DIR,
    buyers: Annotated[int | None, typer.Option(help="Number of buyers (default: params).")] = None,
    days: Annotated[int | None, typer.Option(help="Days simulated (default: params).")] = None,
    seed: Annotated[int | None, typer.Option(help="Random seed (default: params).")] = None,
    file_format: Annotated[str | None, typer.Option("--format", help="parquet or csv.")] = None,
    world: Annotated[
        str,
        typer.Option(help="A named world: default, young, mature, slow_labels, short_export."),
    ] = "default",
    params: ParamsOpt = paths.PARAMS_FILE,
) -> None:
    """Generate a simulated marketplace in the data contract."""
    from refundguard.stages import simulate as stage

    stage.main(
        params, out, n_buyers=buyers, days=days, seed=seed, file_format=file_format, world=world
    )


@app.command()
@friendly
def validate(
    data: Annotated[
        Path | None, typer.Option(help="Input folder (default: params data.input_dir).")
    ] = None,
    out: Annotated[Path, typer.Option(help="Folder for validated tables.")] = paths.VALIDATED_DIR,
    encoding: Annotated[
        str | None,
        typer.Option(help="CSV encoding: auto, utf-8, gb18030, gbk... (default: params)."),
    ] = None,
    params: ParamsOpt = paths.PARAMS_FILE,
) -> None:
    """Check input tables against the contract; quarantine bad rows with reasons."""
    from refundguard.stages import validate as stage

    result = stage.main(params, out, input_dir=data, encoding=encoding)
    for name, r in result.report.items():
        typer.echo(
            f"{name:8s} {r['rows_in']:>9,} rows in, {r['rows_valid']:>9,} valid, "
            f"{r['rows_quarantined']:>7,} quarantined, "
            f"{r.get('rows_fields_nulled', 0):>6,} kept with a field emptied, "
            f"{r['duplicates_collapsed']:>6,} duplicates collapsed"
        )
        if r.get("mapped_columns"):
            mapped = ", ".join(f"{k} -> {v}" for k, v in r["mapped_columns"].items())
            typer.echo(f"{'':8s} columns mapped: {mapped}")
    typer.echo(f"quarantine: {out / paths.QUARANTINE_FILE_NAME}")


@app.command()
@friendly
def sentiment(params: ParamsOpt = paths.PARAMS_FILE) -> None:
    """Train the review sentiment model on star ratings and score every review."""
    from refundguard.stages import sentiment as stage

    stage.main(params)


@app.command()
@friendly
def featurize(params: ParamsOpt = paths.PARAMS_FILE) -> None:
    """Build point-in-time features and targets for every cutoff."""
    from refundguard.config import load_params
    from refundguard.stages import features as stage

    spark_build: stage.SparkBuild | None = None
    if load_params(params).features.engine == "spark":
        # Only then: importing the engine pulls in pyspark.
        from refundguard.features.spark import snapshots_on_spark

        spark_build = snapshots_on_spark
    snaps = stage.main(params, spark_build=spark_build)
    typer.echo(
        f"{len(snaps):,} rows, {int(snaps['target'].sum()):,} positives, "
        f"{snaps['cutoff'].nunique()} cutoffs -> {paths.FEATURES_DIR}"
    )


@app.command()
@friendly
def consistency(params: ParamsOpt = paths.PARAMS_FILE) -> None:
    """Check that each feature means the same at the training and the latest cutoffs."""
    from refundguard.stages import consistency as stage

    report = stage.main(params)
    typer.echo(
        f"{len(report.checks)} features checked, early-vs-late AUC "
        f"{report.adversarial_auc:.3f} -> {stage.CONSISTENCY_DIR}"
    )


@app.command()
@friendly
def train(params: ParamsOpt = paths.PARAMS_FILE) -> None:
    """Train LightGBM on the time split and log the run to MLflow."""
    from refundguard.stages import train as stage

    model = stage.main(params)
    typer.echo(
        f"best iteration {model.best_iteration}; validation AP "
        f"{model.valid_metrics['average_precision']:.3f} -> {paths.MODEL_DIR}"
    )


@app.command()
@friendly
def evaluate(params: ParamsOpt = paths.PARAMS_FILE) -> None:
    """Measure the held-out model, the plain LightGBM and the rule on the test window."""
    from refundguard.reporting.html import plain_verdict
    from refundguard.stages import evaluate as stage

    m = stage.main(params)
    for who in ("model", "plain", "baseline"):
        typer.echo(
            f"{who:8s} ROC-AUC {m[f'{who}.roc_auc']:.3f}  AP {m[f'{who}.average_precision']:.3f}"
            f"  recall@FPR {m[f'{who}.recall_at_fpr']:.3f}"
            f"  precision@top {m[f'{who}.precision_at_top']:.3f}"
        )
    typer.echo(plain_verdict(m))
    typer.echo(f"metrics: {paths.METRICS_FILE} (every figure: {stage.EVALUATION_FILE})")


@app.command()
@friendly
def export(params: ParamsOpt = paths.PARAMS_FILE) -> None:
    """Export the scorer as an MLflow pyfunc model folder."""
    from refundguard.stages import export as stage

    typer.echo(f"scorer: {stage.main(params)}")


def _read_buyer_list(path: Path) -> list[str]:
    import pandas as pd

    from refundguard.data.io import read_raw_table

    frame = read_raw_table(path)
    if "buyer_id" in frame.columns:
        col = frame["buyer_id"]
    elif len(frame.columns) == 1:
        col = frame.iloc[:, 0]
    else:
        raise InputError(f"{path}: needs a 'buyer_id' column")
    ids = col.dropna().astype("str").str.strip()
    ids = ids[ids != ""]
    if ids.empty:
        raise InputError(f"{path}: no buyer ids")
    return list(pd.unique(ids))


# ISO 8601 date or date-time, with an optional UTC offset; and the Chinese long form
# (2025年10月1日, optionally 8:30, 8:30:15, 8时30分 or 8点). Anything else is refused:
# 01/10/2025 is 1 October in China and 10 January to pandas.
_ISO_DATE = re.compile(
    r"\d{4}-\d{2}-\d{2}"
    r"(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?(?:Z|[+-]\d{2}(?::?\d{2})?)?)?"
)
_ZH_DATE = re.compile(
    r"(\d{4})年(\d{1,2})月(\d{1,2})[日号]"
    r"(?:\s*(\d{1,2})(?::(\d{2})(?::(\d{2}))?|[时点](?:(\d{1,2})分(?:(\d{1,2})秒)?)?))?"
)
AS_OF_FORMATS = (
    "ISO 8601 (2025-10-01, 2025-10-01 08:30, 2025-10-01T08:30:00+08:00) or 2025年10月1日 [08:30]"
)


def _parse_as_of(value: str, timezone: str) -> Any:
    import pandas as pd

    text = value.strip()
    if _ISO_DATE.fullmatch(text):
        candidate = text
    elif m := _ZH_DATE.fullmatch(text):
        y, mo, d = int(m[1]), int(m[2]), int(m[3])
        hour = int(m[4] or 0)
        minute = int(m[5] or m[7] or 0)
        second = int(m[6] or m[8] or 0)
        candidate = f"{y:04d}-{mo:02d}-{d:02d} {hour:02d}:{minute:02d}:{second:02d}"
    else:
        raise InputError(f"--as-of {value!r}: not an accepted date; use {AS_OF_FORMATS}")
    try:
        ts = pd.Timestamp(candidate)
    except (ValueError, TypeError) as exc:
        raise InputError(f"--as-of {value!r}: no such date or time ({exc})") from exc
    return ts.tz_localize(timezone) if ts.tzinfo is None else ts


def _report_unknown(ids: list[str], unknown: Any) -> None:
    n = int(unknown.sum())
    if not n:
        return
    examples = [repr(b) for b, u in zip(ids, unknown, strict=True) if u][:3]
    shown = ", ".join(examples) + (", ..." if n > len(examples) else "")
    _warn(
        f"{n:,} of {len(ids):,} buyer ids appear nowhere in the data ({shown}; ids are "
        "case-sensitive): scored with the no-history tier and known_buyer=false"
    )


def _tier_summary(counts: dict[str, int]) -> str:
    from refundguard.contract.vocabulary import TIERS as known

    order = [*known, *sorted(t for t in counts if t not in known)]
    return ", ".join(f"{t} {int(counts.get(t, 0)):,}" for t in order)


@app.command()
@friendly
def score(
    model: Annotated[Path, typer.Option(help="Exported scorer folder.")] = paths.SCORER_DIR,
    data: Annotated[
        Path | None,
        typer.Option(help="Folder of raw tables (orders, refunds, ...; default: data/simulated)."),
    ] = None,
    buyers: Annotated[
        Path | None, typer.Option(help="CSV with a buyer_id column (default: buyers.csv).")
    ] = None,
    as_of: Annotated[
        str,
        typer.Option(
            "--as-of",
            help="Use only what was known before this date/time: ISO 8601 (2025-10-01, "
            "2025-10-01T08:30+08:00) or 2025年10月1日 [08:30]; local unless it has an offset; "
            "at most score.max_days_after_data after the data's last event.",
        ),
    ] = "",
    features: Annotated[
        Path | None,
        typer.Option(
            help="Parquet of feature rows (buyer_id + features) to score in streamed chunks, "
            "instead of --data/--buyers/--as-of.",
        ),
    ] = None,
    out: Annotated[
        Path,
        typer.Option(
            help="Output file: .csv or .xlsx for people (riskiest first, probabilities to 4 "
            "digits; .xlsx adds a summary sheet per tier), .parquet or .json for machines "
            "(input order, full precision, English names).",
        ),
    ] = Path("scores.csv"),
    lang: Annotated[
        str,
        typer.Option(
            help="Language of .csv/.xlsx: en, or zh for Chinese headers and tier names "
            "(信任/标准/人工审核/限制).",
        ),
    ] = "en",
    encoding: Annotated[
        str | None, typer.Option(help="CSV encoding or auto (default: params).")
    ] = None,
    chunk_size: Annotated[
        int | None,
        typer.Option(help="Rows per chunk with --features (default: params score.chunk_size)."),
    ] = None,
    engine: Annotated[
        str,
        typer.Option(
            help="local, or spark: features and scores on Apache Spark (the params spark "
            "block; needs Java 17), written as a Parquet folder of parts.",
        ),
    ] = "local",
    params: ParamsOpt = paths.PARAMS_FILE,
) -> None:
    """Score a list of buyers from raw tables as of a date, or a file of feature rows.

    Buyer ids found in no table are reported on stderr and flagged known_buyer=false.
    When the data folder holds deny_list and/or allow_list tables (CSV, xlsx or Parquet:
    buyer_id, added_at, reason, added_by), a denied buyer is placed in restrict and an
    allowed buyer at most in standard (deny wins for a buyer on both); the output keeps
    the model's tier (model_tier) and records the override and its reason.
    """
    import pandas as pd

    from refundguard.config import Params, load_params
    from refundguard.data.io import write_csv
    from refundguard.data.validate import validate_folder, validate_lists
    from refundguard.serving.labels import LANGUAGES, check_language
    from refundguard.serving.people import SCORE_SUFFIXES, write_scores
    from refundguard.serving.scorer import Scorer, check_as_of, last_event_time, unknown_buyers

    cfg = load_params(params) if params.is_file() else Params()
    if out.suffix.lower() not in SCORE_SUFFIXES:
        raise InputError(f"--out must end in {', '.join(SCORE_SUFFIXES)}, got {out.name!r}")
    if lang not in LANGUAGES:
        raise InputError(f"--lang must be one of {', '.join(LANGUAGES)}, got {lang!r}")
    language = check_language(lang)
    if engine not in ("local", "spark"):
        raise InputError(f"--engine must be local or spark, got {engine!r}")
    if engine == "spark" and (
        features is not None or out.suffix.lower() != ".parquet" or language != "en"
    ):
        raise InputError(
            "--engine spark scores from --data/--buyers/--as-of and writes a .parquet "
            "folder (machine-shaped, English)"
        )
    if features is not None:
        from refundguard.serving.batch import log_progress, score_file

        if as_of or data is not None or buyers is not None:
            raise InputError("--features takes no --data, --buyers or --as-of")
        if out.suffix.lower() not in (".csv", ".parquet") or language != "en":
            raise InputError(
                "--features streams machine-shaped .csv or .parquet (English, input order); "
                "for .xlsx, .json or --lang zh score from --data"
            )
        scorer = Scorer.load(model)
        batch = score_file(
            scorer,
            features,
            out,
            chunk_size=cfg.score.chunk_size if chunk_size is None else chunk_size,
            # A bar on a terminal; one log line per chunk in a log file; --quiet: nothing.
            progress=None if bars.enabled() or bars.quiet() else log_progress,
        )
        typer.echo(f"scored {batch.rows:,} buyers ({_tier_summary(batch.tiers)}) -> {out}")
        return
    if not as_of:
        raise InputError("--as-of is required (e.g. --as-of 2025-06-30), or give --features")
    when = _parse_as_of(as_of, cfg.base.timezone)
    scorer = Scorer.load(model)
    buyer_ids = _read_buyer_list(buyers or Path("buyers.csv"))
    folder = data or paths.SIMULATED_DIR
    result = validate_folder(cfg, folder, encoding)
    lists = validate_lists(cfg, folder, encoding)
    quarantine = pd.concat(
        [q for q in (result.quarantine, lists.quarantine) if len(q)] or [result.quarantine],
        ignore_index=True,
    )
    if len(quarantine):
        q = quarantine
        action = q["action"] if "action" in q.columns else None
        rejected = int((action == "row_rejected").sum()) if action is not None else len(q)
        nulled = len(q) - rejected
        qfile = out.with_name(out.stem + ".quarantine.csv")
        write_csv(q, qfile)
        typer.echo(
            f"{rejected:,} input rows quarantined and {nulled:,} kept with a field emptied, "
            f"with reasons: {qfile}",
            err=True,
        )
    check_as_of(when, last_event_time(result.tables), cfg.score.max_days_after_data)
    unknown = unknown_buyers(result.tables, buyer_ids)
    _report_unknown(buyer_ids, unknown)
    if engine == "spark":
        if lists.tables:
            raise InputError("deny and allow lists are applied by --engine local only")
        _score_on_spark(cfg, model, result, when, buyer_ids, out)
        return
    scores = scorer.score_events(result.tables, when, buyer_ids)
    scores["known_buyer"] = ~unknown
    if lists.tables:
        scores = _apply_lists(scores, lists.tables, when)
    write_scores(scores, out, language)
    counts = {str(k): int(v) for k, v in scores["tier"].value_counts().items()}
    typer.echo(
        f"scored {len(scores):,} buyers as of {when.isoformat()} ({_tier_summary(counts)}) -> {out}"
    )


def _score_on_spark(
    cfg: Any, model: Path, result: Any, when: Any, buyer_ids: list[str], out: Path
) -> None:
    """Score the listed buyers on Spark and write a Parquet folder, one part per worker.

    The validated tables go to a staging folder beside ``out`` (inside the project), which
    the workers read; features, sentiment and scores run as :func:`refundguard.serving.
    spark.score_tables_spark` does, and the driver collects nothing but counts.
    """
    import shutil

    import pandas as pd

    from refundguard.data.validate import write_result
    from refundguard.features.spark import spark_session, stop
    from refundguard.serving.spark import score_tables_spark

    staging = out.with_name(out.name + ".validated")
    shutil.rmtree(staging, ignore_errors=True)
    write_result(result, staging)
    spark = spark_session(cfg.spark.master, cfg.spark.partitions, cfg.spark.conf)
    try:
        scores = score_tables_spark(
            spark, staging, when, model, partitions=cfg.spark.partitions
        )
        wanted = spark.createDataFrame(pd.DataFrame({"buyer_id": buyer_ids}))
        scores.join(wanted, "buyer_id", "inner").write.mode("overwrite").parquet(str(out))
        written = spark.read.parquet(str(out))
        n = written.count()
        tiers = written.groupBy("tier").count().collect()
        counts = {str(r["tier"]): int(r["count"]) for r in tiers}
    finally:
        stop(spark)
        shutil.rmtree(staging, ignore_errors=True)
    if n < len(buyer_ids):
        typer.echo(
            f"{len(buyer_ids) - n:,} listed buyers had no order in the scorer's active "
            "window before --as-of and were not scored on Spark (the local engine scores "
            "them with the no-history note)",
            err=True,
        )
    typer.echo(
        f"scored {n:,} buyers on Spark as of {when.isoformat()} ({_tier_summary(counts)}) "
        f"-> {out}/"
    )


def _apply_lists(scores: Any, tables: dict[str, Any], when: Any) -> Any:
    """Apply the deny/allow lists and say what they did and where the model disagrees."""
    from refundguard.serving.lists import apply_lists, summarize_lists

    deny, allow = tables.get("deny_list"), tables.get("allow_list")
    applied = apply_lists(scores, deny, allow, when)
    s = summarize_lists(applied, allow, when)
    parts = []
    if deny is not None:
        parts.append(
            f"deny list: {s.denied:,} buyers placed in restrict ({s.deny_changed:,} moved)"
        )
    if allow is not None:
        parts.append(
            f"allow list: {s.allowed:,} buyers held at most in standard ({s.allow_changed:,} moved)"
        )
    typer.echo("; ".join(parts))
    typer.echo(
        f"model and lists disagree on {s.disagreements:,} buyers: "
        f"{s.deny_model_trusted:,} denied buyers the model would trust, "
        f"{s.allow_model_restrict:,} allowed buyers the model would restrict"
    )
    if s.on_both:
        _warn(f"{s.on_both:,} buyers are on both the deny and the allow list: denied")
    return applied


_CASE_SUFFIXES = (".html", ".json")


def _case_file_name(buyer_id: str, suffix: str) -> str:
    # Ids may hold any character; a file name keeps letters, digits, dot, dash, underscore.
    safe = re.sub(r"[^\w.-]", "_", buyer_id).strip(".") or "buyer"
    return f"case_{safe}{suffix}"


@app.command()
@friendly
def case(
    model: Annotated[Path, typer.Option(help="Exported scorer folder.")] = paths.SCORER_DIR,
    data: Annotated[
        Path | None,
        typer.Option(help="Folder of raw tables (orders, refunds, ...; default: data/simulated)."),
    ] = None,
    buyer: Annotated[
        list[str] | None, typer.Option("--buyer", help="Buyer id; repeat for several.")
    ] = None,
    buyers: Annotated[
        Path | None, typer.Option(help="CSV with a buyer_id column, instead of or with --buyer.")
    ] = None,
    as_of: Annotated[
        str,
        typer.Option(
            "--as-of",
            help="Show only what was known before this date/time (formats as for `score`).",
        ),
    ] = "",
    out: Annotated[
        Path | None,
        typer.Option(
            help="case.html or case.json (several buyers: all in one file), or a folder "
            "(one file per buyer, named case_<buyer_id>; see --format). Default: "
            "case_<buyer_id>.html for one buyer, the folder cases/ for several.",
        ),
    ] = None,
    lang: Annotated[str, typer.Option(help="Language of the HTML: zh or en.")] = "zh",
    file_format: Annotated[
        str,
        typer.Option("--format", help="html or json, for files written into a folder."),
    ] = "html",
    encoding: Annotated[
        str | None, typer.Option(help="CSV encoding or auto (default: params).")
    ] = None,
    params: ParamsOpt = paths.PARAMS_FILE,
) -> None:
    """Write the analyst's case file of buyers: score, tier, reasons and their evidence.

    Each top reason comes with the buyer's figure, where it stands among buyers, and the
    orders, after-sales requests, reviews or linked accounts behind it; only what was
    known before --as-of is shown. HTML (self-contained, printable; Chinese by default)
    or JSON (English keys, for case-management systems).
    """
    from refundguard.config import Params, load_params
    from refundguard.data.validate import validate_folder
    from refundguard.serving.case import Case, build_cases
    from refundguard.serving.case_render import (
        LANGUAGES,
        check_language,
        render_html,
        render_json,
    )
    from refundguard.serving.scorer import Scorer, check_as_of, last_event_time

    if lang not in LANGUAGES:
        raise InputError(f"--lang must be one of {', '.join(LANGUAGES)}, got {lang!r}")
    language = check_language(lang)
    fmt = file_format.lower().lstrip(".")
    if fmt not in ("html", "json"):
        raise InputError(f"--format must be html or json, got {file_format!r}")
    ids = [b.strip() for b in buyer or [] if b.strip()]
    if buyers is not None:
        ids += _read_buyer_list(buyers)
    ids = list(dict.fromkeys(ids))
    if not ids:
        raise InputError("give a buyer: --buyer ID (repeatable) or --buyers FILE")
    if not as_of:
        raise InputError("--as-of is required (e.g. --as-of 2025-06-30)")
    one_file = out is not None and not out.is_dir() and out.suffix.lower() in _CASE_SUFFIXES
    if out is not None and out.suffix and not out.is_dir() and not one_file:
        raise InputError(f"--out must end in .html or .json, or be a folder; got {out.name!r}")
    cfg = load_params(params) if params.is_file() else Params()
    when = _parse_as_of(as_of, cfg.base.timezone)
    scorer = Scorer.load(model)
    result = validate_folder(cfg, data or paths.SIMULATED_DIR, encoding)
    check_as_of(when, last_event_time(result.tables), cfg.score.max_days_after_data)
    cases = build_cases(scorer, result.tables, ids, when)
    if len(result.quarantine):
        _warn(f"{len(result.quarantine):,} input rows quarantined or with a field emptied")

    def render(items: list[Case], suffix: str) -> str:
        if suffix == ".json":
            return render_json(items[0] if len(items) == 1 else items)
        return render_html(items, language)

    if out is None:
        one_file = len(ids) == 1
        out = Path(_case_file_name(ids[0], f".{fmt}")) if one_file else Path("cases")
    written: list[Path] = []
    if one_file:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(render(cases, out.suffix.lower()), encoding="utf-8")
        written.append(out)
    else:
        out.mkdir(parents=True, exist_ok=True)
        for c in cases:
            path = out / _case_file_name(c.buyer_id, f".{fmt}")
            path.write_text(render([c], f".{fmt}"), encoding="utf-8")
            written.append(path)
    tiers: dict[str, int] = {}
    for c in cases:
        tiers[c.tier] = tiers.get(c.tier, 0) + 1
    where = written[0] if len(written) == 1 else out
    typer.echo(
        f"{len(cases):,} case file(s) as of {when.isoformat()} ({_tier_summary(tiers)}) -> {where}"
    )


model_app = typer.Typer(
    name="model", help="Inspect exported scorers.", no_args_is_help=True, add_completion=False
)
app.add_typer(model_app)


@model_app.command("info")
@friendly
def model_info(
    model: Annotated[
        str, typer.Argument(help="Scorer folder, or models:/NAME@ALIAS or models:/NAME/VERSION.")
    ],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for machines.")] = False,
) -> None:
    """Show a scorer's version, training data hash, commit, params, metrics and catalog."""
    import json

    from refundguard.serving.registry import info_text
    from refundguard.serving.registry import model_info as describe

    info = describe(model)
    typer.echo(json.dumps(info, indent=2, ensure_ascii=False) if as_json else info_text(info))


def main() -> None:
    """Entry point of the ``refundguard`` command and of ``python -m refundguard``."""
    # LightGBM's OpenMP threads spin while they wait by default; on a machine shared with
    # other jobs that made training 4-7x slower here (benchmarks/README.md). Passive
    # waiting costs little on an idle machine. Set before LightGBM loads; a user's own
    # setting wins.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    # pandera (the data contract) imports pyspark.pandas whenever pyspark is installed, and
    # pyspark warns on each import that it does not fully support pandas 3; refundguard
    # uses pyspark.sql only. The warning would break "one line on stderr" for every error.
    warnings.filterwarnings(
        "ignore", message="PySpark does not yet fully support pandas", category=FutureWarning
    )
    app()
