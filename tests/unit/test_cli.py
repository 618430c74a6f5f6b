from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml
from tests.fixtures import TZ, run
from typer.testing import CliRunner

from refundguard import progress
from refundguard.cli import app
from refundguard.features.build import load_validated
from refundguard.features.catalog import NO_HISTORY
from refundguard.serving.scorer import OUTPUT_COLUMNS, last_event_time

runner = CliRunner()


def test_help_lists_every_command() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for cmd in ("simulate", "validate", "sentiment", "featurize", "train", "evaluate", "export",
                "score", "case", "consistency", "model"):
        assert cmd in result.output


def test_score_writes_scores_for_the_list(project: Path, tmp_path: Path) -> None:
    orders = pd.read_parquet(project / "data/validated/orders.parquet")
    buyers = [*sorted(orders["buyer_id"].unique())[:20], "not-a-buyer"]
    pd.DataFrame({"buyer_id": buyers}).to_csv(tmp_path / "buyers.csv", index=False)
    out = tmp_path / "scores.csv"
    proc = run(["refundguard", "score", "--model", str(project / "models/scorer"),
                "--data", str(project / "data/simulated"), "--buyers",
                str(tmp_path / "buyers.csv"), "--as-of", "2024-12-01", "--out", str(out)],
               project)
    scores = pd.read_csv(out, encoding="utf-8-sig")
    # The CSV is for people: riskiest first (see test_score_csv_for_people_...).
    assert sorted(scores["buyer_id"]) == sorted(buyers)
    assert tuple(scores.columns) == (*OUTPUT_COLUMNS, "known_buyer")
    assert scores["probability"].between(0, 1).all()
    # The unknown buyer has no history: the catalog's tier and reason, and the flag.
    unknown = scores.set_index("buyer_id").loc["not-a-buyer"]
    assert unknown["tier"] == NO_HISTORY.tier
    assert unknown["reasons_zh"] == NO_HISTORY.zh
    assert scores["known_buyer"].sum() == 20 and not unknown["known_buyer"]
    assert "scored 21 buyers" in proc.stdout
    warnings = [ln for ln in proc.stderr.splitlines() if ln.startswith("refundguard: warning:")]
    assert len(warnings) == 1
    assert "1 of 21 buyer ids appear nowhere in the data ('not-a-buyer'" in warnings[0]


def _score_args(project: Path, tmp_path: Path, **over: str) -> list[str]:
    (tmp_path / "buyers.csv").write_text("buyer_id\nB000001\n", encoding="utf-8")
    args = {"--model": str(project / "models/scorer"), "--data": str(project / "data/simulated"),
            "--buyers": str(tmp_path / "buyers.csv"), "--as-of": "2024-12-01",
            "--out": str(tmp_path / "s.csv")}
    args.update(over)
    return ["score", *[x for kv in args.items() for x in kv]]


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"--as-of": "yesterday"}, "--as-of"),
        ({"--as-of": "2024-13-45"}, "--as-of"),
        ({"--data": "/nonexistent/folder"}, "input folder not found"),
        ({"--model": "/nonexistent/model"}, "not an exported refundguard scorer"),
        ({"--buyers": "/nonexistent/buyers.csv"}, "cannot read"),
    ],
)
def test_score_bad_arguments_give_one_line(project: Path, tmp_path: Path,
                                           override: dict[str, str], message: str) -> None:
    result = runner.invoke(app, _score_args(project, tmp_path, **override))
    assert result.exit_code == 2
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("refundguard: error:")
    assert message in lines[0]
    assert "Traceback" not in result.output


def test_buyers_file_without_buyer_id_column(project: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n", encoding="utf-8")
    result = runner.invoke(app, _score_args(project, tmp_path, **{"--buyers": str(bad)}))
    assert result.exit_code == 2
    assert "buyer_id" in result.stderr


def test_validate_missing_table_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    pd.DataFrame({"order_id": ["o1"]}).to_csv(tmp_path / "in" / "orders.csv", index=False)
    result = runner.invoke(app, ["validate", "--data", str(tmp_path / "in"), "--out",
                                 str(tmp_path / "out")])
    assert result.exit_code == 2
    assert "required column(s) missing" in result.stderr


def test_bad_params_key_is_named(tmp_path: Path) -> None:
    params = tmp_path / "params.yaml"
    params.write_text("train:\n  n_valid_cutoff: 2\n", encoding="utf-8")
    result = runner.invoke(app, ["train", "--params", str(params)])
    assert result.exit_code == 2
    assert "train.n_valid_cutoff" in result.stderr


def test_subprocess_error_has_no_traceback(project: Path) -> None:
    proc = run(["refundguard", "score", "--as-of", "nonsense", "--model",
                str(project / "models/scorer"), "--data", str(project / "data/simulated"),
                "--buyers", str(project / "params.yaml")], project, check=False)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().count("\n") == 0


def _one_error_line(stderr: str) -> str:
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("refundguard: error:"), stderr
    return lines[0]


@pytest.fixture(scope="module")
def last_event(project: Path) -> pd.Timestamp:
    last = last_event_time(load_validated(project / "data/validated"))
    assert last is not None
    return last.tz_convert("Asia/Shanghai")


def test_as_of_after_the_data_is_refused(project: Path, tmp_path: Path,
                                         last_event: pd.Timestamp) -> None:
    """The bug: --as-of 2030-01-01 scored every buyer "trusted" (all windows empty)."""
    result = runner.invoke(app, _score_args(project, tmp_path, **{"--as-of": "2030-01-01"}))
    assert result.exit_code == 2
    line = _one_error_line(result.stderr)
    assert "--as-of 2030-01-01T00:00:00+08:00" in line
    assert f"last event ({last_event.isoformat()})" in line
    assert "at most 7 days" in line and "score.max_days_after_data" in line
    assert not (tmp_path / "s.csv").exists()


def test_as_of_gap_comes_from_params(project: Path, tmp_path: Path,
                                     last_event: pd.Timestamp) -> None:
    three_days_on = (last_event + pd.Timedelta(days=3)).strftime("%Y-%m-%d %H:%M")
    ok = runner.invoke(app, _score_args(project, tmp_path, **{"--as-of": three_days_on}))
    assert ok.exit_code == 0, ok.output
    raw = yaml.safe_load((project / "params.yaml").read_text(encoding="utf-8"))
    raw["score"]["max_days_after_data"] = 1
    strict = tmp_path / "params.yaml"
    strict.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    refused = runner.invoke(app, [*_score_args(project, tmp_path, **{"--as-of": three_days_on}),
                                  "--params", str(strict)])
    assert refused.exit_code == 2
    assert "at most 1 days" in _one_error_line(refused.stderr)


@pytest.mark.parametrize(
    "as_of", ["01/10/2024", "10/01/2024", "2024/10/01", "1 Oct 2024", "20241001", "2024-10-1",
              "2024.10.01", "2024年10月"],
)
def test_ambiguous_or_unknown_date_forms_are_refused(project: Path, tmp_path: Path,
                                                     as_of: str) -> None:
    """The bug: 01/10/2025 was read month first (10 January) without a word."""
    result = runner.invoke(app, _score_args(project, tmp_path, **{"--as-of": as_of}))
    assert result.exit_code == 2
    line = _one_error_line(result.stderr)
    assert repr(as_of) in line and "not an accepted date" in line
    assert "ISO 8601" in line and "2025年10月1日" in line


def _scores_as_of(project: Path, tmp_path: Path, as_of: str) -> pd.DataFrame:
    out = tmp_path / f"s{hashlib.sha256(as_of.encode()).hexdigest()[:8]}.parquet"
    result = runner.invoke(app, _score_args(project, tmp_path, **{"--as-of": as_of,
                                                                   "--out": str(out)}))
    assert result.exit_code == 0, result.output
    return pd.read_parquet(out)


@pytest.mark.parametrize(
    ("iso", "others"),
    [("2024-12-01", ["2024年12月1日", "2024-12-01T00:00:00+08:00", "2024-11-30T16:00Z"]),
     ("2024-12-01 08:30", ["2024年12月1日 8:30", "2024年12月1日8时30分", "2024-12-01T08:30"])],
)
def test_iso_and_chinese_dates_mean_the_same_time(project: Path, tmp_path: Path, iso: str,
                                                  others: list[str]) -> None:
    (tmp_path / "buyers.csv").write_text("buyer_id\nB000001\n", encoding="utf-8")
    expected = _scores_as_of(project, tmp_path, iso)
    for other in others:
        pd.testing.assert_frame_equal(_scores_as_of(project, tmp_path, other), expected)


def test_unknown_ids_are_counted_flagged_and_not_silently_new(project: Path,
                                                              tmp_path: Path) -> None:
    """The bug: README's b000123 (the data has B000123) was scored as a new buyer."""
    orders = pd.read_parquet(project / "data/validated/orders.parquet")
    real = sorted(orders["buyer_id"].unique())[:3]
    asked = [*real, real[0].lower(), "x1", "x2", "x3"]
    buyers = tmp_path / "ids.csv"
    pd.DataFrame({"buyer_id": asked}).to_csv(buyers, index=False)
    out = tmp_path / "s.csv"
    result = runner.invoke(app, _score_args(project, tmp_path, **{"--buyers": str(buyers),
                                                                   "--out": str(out)}))
    assert result.exit_code == 0, result.output
    warnings = [ln for ln in result.stderr.splitlines() if "warning" in ln]
    assert len(warnings) == 1
    assert f"4 of 7 buyer ids appear nowhere in the data ('{real[0].lower()}', 'x1', 'x2', ..."\
        in warnings[0]
    assert "case-sensitive" in warnings[0] and "known_buyer=false" in warnings[0]
    scores = pd.read_csv(out, encoding="utf-8-sig")
    # A CSV for people is sorted by risk: look the rows up by id.
    scores = scores.set_index("buyer_id").loc[asked]
    assert scores["known_buyer"].tolist() == [True] * 3 + [False] * 4
    assert (scores["tier"].iloc[3:] == NO_HISTORY.tier).all()
    assert (scores["reasons_en"].iloc[3:] == NO_HISTORY.en).all()


def test_known_ids_give_no_warning(project: Path, tmp_path: Path) -> None:
    result = runner.invoke(app, _score_args(project, tmp_path))
    assert result.exit_code == 0, result.output
    assert "warning" not in result.stderr
    assert pd.read_csv(tmp_path / "s.csv", encoding="utf-8-sig")["known_buyer"].all()


def test_features_file_with_several_cutoffs_keeps_the_cutoff(project: Path,
                                                             tmp_path: Path) -> None:
    snaps = project / "data/features/snapshots.parquet"
    cutoffs = pd.read_parquet(snaps, columns=["buyer_id", "cutoff"])
    assert cutoffs["cutoff"].nunique() > 1
    out = tmp_path / "scores.parquet"
    result = runner.invoke(app, ["score", "--model", str(project / "models/scorer"),
                                 "--features", str(snaps), "--out", str(out)])
    assert result.exit_code == 0, result.output
    got = pd.read_parquet(out)
    assert list(got.columns[:2]) == ["buyer_id", "cutoff"]
    pd.testing.assert_frame_equal(got[["buyer_id", "cutoff"]], cutoffs)


def test_quiet_option_silences_progress(project: Path, tmp_path: Path) -> None:
    snaps = str(project / "data/features/snapshots.parquet")
    args = ["score", "--model", str(project / "models/scorer"), "--features", snaps,
            "--chunk-size", "5000"]
    loud = run(["refundguard", *args, "--out", str(tmp_path / "a.parquet")], project)
    # stderr is a pipe, not a terminal: no bar, one log line per chunk.
    assert "score: 5,000 of" in loud.stderr
    assert "\x1b[" not in loud.stderr
    quiet = run(["refundguard", "--quiet", *args, "--out", str(tmp_path / "b.parquet")],
                project)
    assert quiet.stderr == ""
    assert "scored" in quiet.stdout
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "a.parquet"),
                                  pd.read_parquet(tmp_path / "b.parquet"))


def test_quiet_option_sets_the_environment_for_stages(project: Path, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(progress.ENV_QUIET, raising=False)
    result = runner.invoke(app, ["--quiet", "score", "--model", str(project / "models/scorer"),
                                 "--features", str(project / "data/features/snapshots.parquet"),
                                 "--out", str(tmp_path / "s.parquet")])
    assert result.exit_code == 0, result.output
    assert os.environ.get(progress.ENV_QUIET) == "1" and progress.quiet()


def test_negative_gap_in_params_is_named(project: Path, tmp_path: Path) -> None:
    raw = yaml.safe_load((project / "params.yaml").read_text(encoding="utf-8"))
    raw["score"]["max_days_after_data"] = -1
    bad = tmp_path / "params.yaml"
    bad.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    result = runner.invoke(app, [*_score_args(project, tmp_path), "--params", str(bad)])
    assert result.exit_code == 2
    assert "score.max_days_after_data must be >= 0" in _one_error_line(result.stderr)


# --- score: lists, Excel and --lang, on a tiny in-process scorer (fast) -----------------

TINY_AS_OF = "2024-07-01"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any, list[str]]:
    """A tiny simulated world written as CSV, a small scorer on it, and buyers to score."""
    import lightgbm as lgb

    from refundguard.config import FeaturesParams, SimulateParams
    from refundguard.data.validate import validate_tables
    from refundguard.features.build import build_snapshots
    from refundguard.features.catalog import build_catalog, catalog_version
    from refundguard.features.events import prepare_events
    from refundguard.model.calibration import Calibrator
    from refundguard.model.train import reference_distribution
    from refundguard.serving.scorer import Scorer
    from refundguard.sim.simulate import simulate_world, write_world

    world = simulate_world(
        SimulateParams(n_buyers=300, days=240, start="2024-01-01", label_coverage=0.9), seed=5
    )
    folder = tmp_path_factory.mktemp("tiny") / "data"
    folder.mkdir()
    write_world(world, folder, "csv")
    raw = {k: getattr(world, k) for k in ("orders", "refunds", "reviews", "labels", "buyers")}
    t = validate_tables(raw, timezone=TZ, max_text_chars=2000).tables
    fp = FeaturesParams()
    catalog = build_catalog(fp)
    events = prepare_events(t["orders"], t["refunds"], t["reviews"], t["buyers"],
                            labels=t["labels"], timezone=TZ)
    cutoffs = [pd.Timestamp("2024-05-01", tz=TZ), pd.Timestamp("2024-06-01", tz=TZ)]
    snaps = build_snapshots(events, t["labels"], cutoffs, catalog, horizon_days=42,
                            active_days=365)
    names = [f.name for f in catalog]
    booster = lgb.train(
        {"objective": "binary", "verbose": -1, "num_leaves": 7, "min_data_in_leaf": 5,
         "seed": 1, "num_threads": 1},
        lgb.Dataset(snaps[names], snaps["target"]), num_boost_round=30,
    )
    scorer = Scorer(
        booster=booster, calibrator=Calibrator("platt"), features=tuple(names),
        catalog_version=catalog_version(catalog), bounds=(0.05, 0.2, 0.5), feature_params=fp,
        reference=reference_distribution(snaps, names)["quantiles"], model_version="rg-test",
        timezone=TZ,
    )
    early = t["orders"][t["orders"]["created_at"] < pd.Timestamp(TINY_AS_OF, tz=TZ)]
    ids = [str(b) for b in early["buyer_id"].value_counts().index[:40]]
    return folder, scorer, ids


def _tiny_score(tiny: tuple[Path, Any, list[str]], tmp_path: Path,
                monkeypatch: pytest.MonkeyPatch, *extra: str) -> Any:
    from refundguard.serving.scorer import Scorer

    folder, scorer, ids = tiny
    monkeypatch.setattr(Scorer, "load", classmethod(lambda cls, path: scorer))
    buyers = tmp_path / "buyers.csv"
    pd.DataFrame({"buyer_id": ids}).to_csv(buyers, index=False)
    return runner.invoke(app, ["score", "--model", str(tmp_path / "model"), "--data", str(folder),
                               "--buyers", str(buyers), "--as-of", TINY_AS_OF,
                               "--params", str(tmp_path / "no-params.yaml"), *extra])


def _data_with_lists(tiny: tuple[Path, Any, list[str]], tmp_path: Path,
                     tiers: pd.Series) -> Path:
    """A copy of the tiny data folder with a Chinese-header deny list (xlsx) and an allow
    list (CSV): deny the most trusted buyer, allow the riskiest one."""
    import shutil

    folder = tmp_path / "data"
    shutil.copytree(tiny[0], folder)
    trusted, riskiest = tiers.index[-1], tiers.index[0]
    pd.DataFrame({
        "买家ID": [trusted, riskiest, tiers.index[1]],
        "加入时间": ["2024-06-01 09:00", "2024-06-02 09:00", "2024-07-05 09:00"],
        "原因": ["平台判定恶意", "多次仅退款", "as_of 之后加入"],
        "添加人": ["张三", "李四", "王五"],
    }).to_excel(folder / "deny_list.xlsx", index=False)
    pd.DataFrame({
        "买家ID": [riskiest, tiers.index[2], "nobody"],
        "加入时间": ["2024-05-01", "2024-05-01", "2024-05-01"],
        "原因": ["老客户", "核实无误", "不在名单中"],
    }).to_csv(folder / "allow_list.csv", index=False, encoding="utf-8-sig")
    return folder


def test_score_csv_for_people_is_sorted_and_rounded(
    tiny: tuple[Path, Any, list[str]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "scores.csv"
    result = _tiny_score(tiny, tmp_path, monkeypatch, "--out", str(out))
    assert result.exit_code == 0, result.output
    got = pd.read_csv(out, encoding="utf-8-sig")
    assert tuple(got.columns) == (*OUTPUT_COLUMNS, "known_buyer")  # en: names as before
    assert sorted(got["buyer_id"]) == sorted(tiny[2])
    assert (got["probability"] == got["probability"].round(4)).all()
    severity = got["tier"].map({"trusted": 0, "standard": 1, "review": 2, "restrict": 3})
    assert severity.is_monotonic_decreasing
    assert "override" not in got.columns  # no lists, no list columns
    # Parquet stays machine-shaped: input order, full precision.
    result = _tiny_score(tiny, tmp_path, monkeypatch, "--out", str(tmp_path / "s.parquet"))
    assert result.exit_code == 0, result.output
    machine = pd.read_parquet(tmp_path / "s.parquet")
    assert machine["buyer_id"].tolist() == tiny[2]
    assert (machine["probability"] != machine["probability"].round(4)).any()


def test_score_xlsx_zh_with_lists(
    tiny: tuple[Path, Any, list[str]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from refundguard.serving.labels import TIER_LABELS

    base = tmp_path / "base.parquet"
    assert _tiny_score(tiny, tmp_path, monkeypatch, "--out", str(base)).exit_code == 0
    model = pd.read_parquet(base).sort_values("probability", ascending=False)
    model = model.set_index("buyer_id")
    data = _data_with_lists(tiny, tmp_path, model["tier"])
    trusted, riskiest, late, allowed = (model.index[-1], model.index[0], model.index[1],
                                        model.index[2])
    out = tmp_path / "scores.xlsx"
    result = _tiny_score((data, tiny[1], tiny[2]), tmp_path, monkeypatch,
                         "--out", str(out), "--lang", "zh")
    assert result.exit_code == 0, result.output
    assert "deny list: 2 buyers placed in restrict" in result.stdout
    assert "allow list: 1 buyers held at most in standard" in result.stdout
    assert "model and lists disagree on" in result.stdout
    assert "on both the deny and the allow list" in result.stderr

    sheets = pd.read_excel(out, sheet_name=None)
    assert list(sheets) == ["评分", "按级别汇总"]
    scores, summary = sheets["评分"], sheets["按级别汇总"]
    assert scores.columns[0] == "买家ID"
    assert {"风险概率", "处理级别", "模型级别", "名单覆盖", "名单原因", "名单添加人"} <= set(
        scores.columns)
    assert set(scores["处理级别"]) <= set(TIER_LABELS["zh"].values())
    assert (scores["风险概率"] == scores["风险概率"].round(4)).all()
    row = scores.set_index("买家ID")
    # Denied: restrict whatever the model said; the model's tier stays visible.
    assert row.loc[trusted, "处理级别"] == "限制"
    assert row.loc[trusted, "模型级别"] == TIER_LABELS["zh"][model.loc[trusted, "tier"]]
    assert row.loc[trusted, "名单覆盖"] == "黑名单"
    assert row.loc[trusted, "名单原因"] == "平台判定恶意"
    assert row.loc[trusted, "名单添加人"] == "张三"
    # On both lists: deny wins.
    assert row.loc[riskiest, "名单覆盖"] == "黑名单" and row.loc[riskiest, "处理级别"] == "限制"
    # Added after --as-of: no effect.
    assert pd.isna(row.loc[late, "名单覆盖"])
    # Allowed: at most standard.
    assert row.loc[allowed, "名单覆盖"] == "白名单"
    assert row.loc[allowed, "处理级别"] in ("标准", "信任")
    assert row.loc[allowed, "名单原因"] == "核实无误"
    assert summary["处理级别"].tolist() == ["限制", "人工审核", "标准", "信任", "合计"]
    assert summary["买家数"].iloc[-1] == len(tiny[2])
    assert summary["名单覆盖数"].iloc[-1] == 3


def test_score_list_bad_rows_go_to_the_quarantine(
    tiny: tuple[Path, Any, list[str]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil

    data = tmp_path / "data"
    shutil.copytree(tiny[0], data)
    pd.DataFrame({"buyer_id": [tiny[2][0], tiny[2][1]], "added_at": ["2024-06-01", "soon"],
                  "reason": ["x", "y"]}).to_parquet(data / "deny_list.parquet", index=False)
    out = tmp_path / "s.json"
    result = _tiny_score((data, tiny[1], tiny[2]), tmp_path, monkeypatch, "--out", str(out))
    assert result.exit_code == 0, result.output
    q = pd.read_csv(tmp_path / "s.quarantine.csv", encoding="utf-8-sig")
    bad = q[q["table"] == "deny_list"]
    assert len(bad) == 1 and "added_at: unparseable time" in bad["reason"].iloc[0]
    import json

    rows = json.loads(out.read_text(encoding="utf-8"))
    assert [r["buyer_id"] for r in rows] == tiny[2]  # JSON: machine-shaped, input order
    assert rows[0]["override"] == "deny" and rows[0]["tier"] == "restrict"
    assert rows[1]["override"] == ""


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--lang", "fr"], "--lang must be one of zh, en"),
        (["--out", "scores.txt"], "--out must end in"),
    ],
)
def test_score_bad_output_options_give_one_line(
    tiny: tuple[Path, Any, list[str]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    extra: list[str], message: str,
) -> None:
    result = _tiny_score(tiny, tmp_path, monkeypatch, *extra)
    assert result.exit_code == 2
    assert message in _one_error_line(result.stderr)
    assert "Traceback" not in result.output


def test_score_features_refuses_excel_and_zh(tmp_path: Path) -> None:
    for extra in (["--out", "s.xlsx"], ["--out", "s.csv", "--lang", "zh"]):
        result = runner.invoke(app, ["score", "--features", str(tmp_path / "f.parquet"),
                                     "--model", str(tmp_path), *extra])
        assert result.exit_code == 2
        assert "--features streams machine-shaped" in _one_error_line(result.stderr)


def test_score_list_missing_column_is_one_line(
    tiny: tuple[Path, Any, list[str]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil

    data = tmp_path / "data"
    shutil.copytree(tiny[0], data)
    (data / "allow_list.csv").write_text("buyer_id,reason\nB1,x\n", encoding="utf-8")
    result = _tiny_score((data, tiny[1], tiny[2]), tmp_path, monkeypatch,
                         "--out", str(tmp_path / "s.csv"))
    assert result.exit_code == 2
    assert "allow_list: required column(s) missing: added_at" in _one_error_line(result.stderr)
