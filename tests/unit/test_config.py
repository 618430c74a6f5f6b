from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.fixtures import REPO

from refundguard.config import (
    BaseParams,
    DataParams,
    LightGBMParams,
    Params,
    PolicyParams,
    SearchRange,
    TrainParams,
    load_params,
    params_from_dict,
)
from refundguard.errors import ConfigError
from refundguard.paths import PARAMS_FILE, PROJECT_ROOT

REPO_PARAMS = REPO / "params.yaml"


# --- defaults ---------------------------------------------------------------------------


@pytest.mark.parametrize("raw", [{}, None])
def test_empty_input_gives_defaults(raw: dict[str, Any] | None) -> None:
    p = params_from_dict(raw)  # type: ignore[arg-type]
    assert p == Params()


def test_default_values() -> None:
    p = Params()
    assert p.base.seed == 42
    assert p.base.timezone == "Asia/Shanghai"
    assert p.base.first_cutoff is None and p.base.last_cutoff is None
    assert p.base.horizon_days is None  # derived from the data
    assert p.base.horizon_bounds_days == (14, 180)
    assert p.data.encoding == "auto"
    assert p.simulate.worlds == ("default",)
    assert p.train.calibration == "auto"
    assert p.train.reweight == "check"
    assert p.train.lightgbm == LightGBMParams()
    # Tuning is opt-in, so that an explicit train.lightgbm setting always takes effect.
    assert p.train.tuning.n_trials == 0 and "num_leaves" in p.train.tuning.search_space
    assert p.policy.bounds is None
    assert p.policy.loss_prevented["restrict"] == 1.0 and p.policy.friction["trusted"] == 0.0
    assert p.features.windows_days == (30, 90, 365)


def test_partial_block_keeps_other_defaults() -> None:
    p = params_from_dict({"base": {"seed": 7}, "train": {"lightgbm": {"num_leaves": 15}}})
    assert p.base.seed == 7
    assert p.base.horizon_days == BaseParams().horizon_days
    assert p.train.lightgbm.num_leaves == 15
    assert p.train.lightgbm.learning_rate == LightGBMParams().learning_rate
    assert p.train.n_valid_cutoffs == TrainParams().n_valid_cutoffs
    assert p.data == DataParams()


def test_int_is_accepted_for_float_and_converted() -> None:
    p = params_from_dict(
        {"validate": {"max_reject_share": 1}, "features": {"fast_refund_hours": 12}}
    )
    assert p.validate.max_reject_share == 1.0
    assert isinstance(p.validate.max_reject_share, float)
    assert isinstance(p.features.fast_refund_hours, float)


def test_lists_become_tuples_and_mappings_are_typed() -> None:
    p = params_from_dict(
        {
            "features": {"windows_days": [7, 30]},
            "simulate": {"label_delay_days": [1, 2], "segment_shares": {"wardrober": 0}},
        }
    )
    assert p.features.windows_days == (7, 30)
    assert isinstance(p.features.windows_days, tuple)
    assert p.simulate.label_delay_days == (1, 2)
    assert p.simulate.segment_shares == {"wardrober": 0.0}
    assert isinstance(p.simulate.segment_shares["wardrober"], float)


def test_optional_values_accept_null_and_text() -> None:
    p = params_from_dict({"base": {"first_cutoff": "2024-05-01", "last_cutoff": None},
                          "data": {"truth_file": None}})
    assert p.base.first_cutoff == "2024-05-01"
    assert p.base.last_cutoff is None
    assert p.data.truth_path() is None


def test_data_paths_are_rooted(tmp_path: Path) -> None:
    rel = params_from_dict({"data": {"input_dir": "some/folder"}}).data
    assert rel.input_path() == PROJECT_ROOT / "some" / "folder"
    absolute = params_from_dict({"data": {"input_dir": str(tmp_path)}}).data
    assert absolute.input_path() == tmp_path


# --- the repo's params.yaml -------------------------------------------------------------


def test_repo_params_yaml_loads() -> None:
    assert REPO_PARAMS.is_file()
    p = load_params(REPO_PARAMS)
    raw = yaml.safe_load(REPO_PARAMS.read_text(encoding="utf-8"))
    assert isinstance(p, Params)
    assert p.base.seed == raw["base"]["seed"]
    assert p.base.horizon_days == raw["base"]["horizon_days"]
    assert p.train.n_test_cutoffs == raw["train"]["n_test_cutoffs"]
    assert p.train.calibration == raw["train"]["calibration"]
    assert p.train.lightgbm.num_boost_round == raw["train"]["lightgbm"]["num_boost_round"]
    assert p.features.windows_days == tuple(raw["features"]["windows_days"])
    assert p.simulate.worlds == tuple(raw["simulate"]["worlds"])
    assert p.simulate.label_delay_days == tuple(raw["simulate"]["label_delay_days"])
    assert p.policy.abuse_loss == raw["policy"]["abuse_loss"]
    assert p.policy.review_capacity_per_day == raw["policy"]["review_capacity_per_day"]
    assert p.train.monotone_increasing == tuple(raw["train"]["monotone_increasing"])
    assert p.train.tuning.search_space["num_leaves"] == SearchRange(
        **raw["train"]["tuning"]["search_space"]["num_leaves"]
    )
    assert p.data.encoding == raw["data"]["encoding"]


def test_default_path_is_the_repo_params_file() -> None:
    assert load_params() == load_params(PARAMS_FILE)


def test_load_params_reads_a_file(tmp_path: Path) -> None:
    path = tmp_path / "params.yaml"
    path.write_text("base:\n  seed: 3\n  timezone: UTC\npolicy:\n  abuse_loss: 70\n",
                    encoding="utf-8")
    p = load_params(path)
    assert p.base.seed == 3
    assert p.base.timezone == "UTC"
    assert p.policy.abuse_loss == 70.0


def test_empty_file_gives_defaults(tmp_path: Path) -> None:
    path = tmp_path / "params.yaml"
    path.write_text("# nothing set\n", encoding="utf-8")
    assert load_params(path) == Params()


# --- unknown keys -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "name"),
    [
        ({"bogus": {}}, "bogus"),
        ({"base": {"sed": 1}}, "base.sed"),
        ({"train": {"lightgbm": {"num_leafs": 3}}}, "train.lightgbm.num_leafs"),
        ({"policy": {"abuse_loss": 30.0, "zzz": 1}}, "policy.zzz"),
    ],
)
def test_unknown_key_names_the_key(raw: dict[str, Any], name: str) -> None:
    with pytest.raises(ConfigError, match="unknown key") as info:
        params_from_dict(raw)
    assert f"'{name}'" in str(info.value)


def test_unknown_key_in_file(tmp_path: Path) -> None:
    path = tmp_path / "params.yaml"
    path.write_text("validate:\n  max_rejet_share: 0.1\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"validate\.max_rejet_share"):
        load_params(path)


# --- wrong types ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "name"),
    [
        pytest.param({"base": {"seed": "abc"}}, "base.seed", id="string-for-int"),
        pytest.param({"base": {"seed": "42"}}, "base.seed", id="numeric-string-for-int"),
        pytest.param({"base": {"seed": 4.5}}, "base.seed", id="float-for-int"),
        pytest.param({"base": {"seed": True}}, "base.seed", id="bool-for-int"),
        pytest.param({"validate": {"max_reject_share": True}}, "validate.max_reject_share",
                     id="bool-for-float"),
        pytest.param({"validate": {"max_reject_share": "0.2"}}, "validate.max_reject_share",
                     id="string-for-float"),
        pytest.param({"simulate": {"segment_shares": [0.1, 0.2]}}, "simulate.segment_shares",
                     id="list-for-mapping"),
        pytest.param({"base": [1, 2]}, "base", id="list-for-block"),
        pytest.param({"train": {"lightgbm": 5}}, "train.lightgbm", id="number-for-nested-block"),
        pytest.param({"train": {"calibration": "sigmoid"}}, "train.calibration",
                     id="bad-literal"),
        pytest.param({"simulate": {"file_format": "xlsx"}}, "simulate.file_format",
                     id="bad-literal-format"),
        pytest.param({"features": {"windows_days": "30"}}, "features.windows_days",
                     id="string-for-list"),
        pytest.param({"features": {"windows_days": [30, "x"]}}, "features.windows_days[1]",
                     id="bad-list-item"),
        pytest.param({"simulate": {"segment_shares": {"wardrober": "lots"}}},
                     "simulate.segment_shares.wardrober", id="bad-mapping-value"),
        pytest.param({"base": {"timezone": ["Asia/Shanghai"]}}, "base.timezone",
                     id="list-for-text"),
        pytest.param({"base": {"timezone": True}}, "base.timezone", id="bool-for-text"),
    ],
)
def test_wrong_type_names_the_key(raw: dict[str, Any], name: str) -> None:
    with pytest.raises(ConfigError) as info:
        params_from_dict(raw)
    assert f"'{name}'" in str(info.value)


# --- cross-field checks -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("policy", "match"),
    [
        ({"bounds": [0.3, 0.2, 0.6]}, "policy.bounds"),
        ({"bounds": [0.2, 0.2, 0.6]}, "policy.bounds"),
        ({"bounds": [0.1, 0.2, 1.0]}, "policy.bounds"),
        ({"bounds": [0.1, 0.2]}, "policy.bounds"),
        ({"abuse_loss": 0.0}, "abuse_loss"),
        ({"max_honest_above_standard": 0.0}, "max_honest_above_standard"),
        ({"review_capacity_per_day": -1.0}, "review_capacity_per_day"),
        ({"loss_prevented": {"trusted": 0.5, "standard": 0.3, "review": 0.9,
                             "restrict": 1.0}}, "must not decrease"),
        ({"friction": {"trusted": 0.0, "standard": 1.0}}, "exactly the tiers"),
        ({"loss_prevented": {"trusted": 0.0, "standard": 0.3, "review": 0.9,
                             "restrict": 1.5}}, "at most 1"),
    ],
)
def test_bad_policy_costs_and_limits_are_named(policy: dict[str, object], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        params_from_dict({"policy": policy})


@pytest.mark.parametrize(
    "registry",
    [{"min_improvement": float("nan")}, {"min_improvement": float("inf")}, {"name": ""},
     {"name": "a/b"}, {"name": "x@champion"}],
)
def test_bad_registry_settings_are_refused(registry: dict[str, object]) -> None:
    with pytest.raises(ConfigError, match="registry"):
        params_from_dict({"registry": registry})


def test_fixed_policy_bounds_are_accepted() -> None:
    p = params_from_dict({"policy": {"bounds": [0.01, 0.5, 0.99]}})
    assert p.policy.bounds == (0.01, 0.5, 0.99)


@pytest.mark.parametrize(
    ("train", "match"),
    [
        ({"n_calibration_cutoffs": 0}, "n_\\*_cutoffs"),
        ({"tuning": {"n_folds": 0}}, "n_folds"),
        ({"tuning": {"search_space": {"objective": {"low": 0, "high": 1}}}}, "not a tunable"),
        ({"tuning": {"search_space": {"lambda_l2": {"low": 0, "high": 1, "log": True}}}},
         "low > 0"),
        ({"tuning": {"search_space": {"num_leaves": {"low": 9, "high": 3}}}}, "low <= high"),
        ({"reweight": "sometimes"}, "reweight"),
        ({"calibration": "beta"}, "calibration"),
        ({"negative_share": 0}, "negative_share"),
        ({"negative_share": 1.5}, "negative_share"),
    ],
)
def test_bad_train_settings_are_named(train: dict[str, object], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        params_from_dict({"train": train})


@pytest.mark.parametrize(
    ("raw", "match"),
    [
        ({"base": {"horizon_days": 0}}, "horizon_days"),
        ({"base": {"cutoff_step_days": -1}}, "cutoff_step_days"),
        ({"validate": {"max_reject_share": 0}}, "max_reject_share"),
        ({"validate": {"max_reject_share": 1.5}}, "max_reject_share"),
        ({"evaluate": {"top_share": 0}}, "top_share"),
        ({"evaluate": {"top_share": 1}}, "top_share"),
        ({"evaluate": {"max_fpr": 1.0}}, "max_fpr"),
        ({"simulate": {"segment_shares": {"a": 0.5, "b": 0.5}}}, "segment_shares"),
        ({"sentiment": {"ngram_min": 0}}, "n-gram"),
        ({"sentiment": {"ngram_min": 3, "ngram_max": 2}}, "n-gram"),
    ],
)
def test_range_checks(raw: dict[str, Any], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        params_from_dict(raw)


def test_boundary_values_are_accepted() -> None:
    p = params_from_dict(
        {
            "validate": {"max_reject_share": 1.0},
            "sentiment": {"ngram_min": 2, "ngram_max": 2},
            "simulate": {"segment_shares": {"a": 0.99}},
        }
    )
    assert p.validate.max_reject_share == 1.0
    assert p.sentiment.ngram_min == p.sentiment.ngram_max == 2


# --- files ------------------------------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError, match="not found") as info:
        load_params(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("text", ["- base\n- data\n", "42\n", "just text\n"])
def test_non_mapping_yaml(tmp_path: Path, text: str) -> None:
    path = tmp_path / "params.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match="mapping"):
        load_params(path)


def test_invalid_yaml(tmp_path: Path) -> None:
    path = tmp_path / "params.yaml"
    path.write_text("base: {seed: [1, 2\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="cannot read"):
        load_params(path)


def test_folder_instead_of_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        load_params(tmp_path)


# --- frozen -----------------------------------------------------------------------------


def test_dataclasses_are_frozen() -> None:
    p = params_from_dict({})
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.base.seed = 1  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.train.lightgbm.num_leaves = 2  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.policy = PolicyParams()  # type: ignore[misc]
    assert p.base.seed == 42


def test_every_block_is_a_frozen_dataclass() -> None:
    def walk(obj: object) -> list[object]:
        found = [obj]
        for f in dataclasses.fields(obj):  # type: ignore[arg-type]
            value = getattr(obj, f.name)
            if dataclasses.is_dataclass(value):
                found.extend(walk(value))
        return found

    blocks = walk(Params())
    # Params, thirteen blocks, LightGBMParams, TuningParams, DemandParams (SearchRanges sit
    # in a dict).
    assert len(blocks) == 17
    ranges = Params().train.tuning.search_space.values()
    assert all(type(r).__dataclass_params__.frozen for r in ranges)  # type: ignore[attr-defined]
    for block in blocks:
        assert type(block).__dataclass_params__.frozen  # type: ignore[attr-defined]


def test_params_yaml_and_the_dataclass_defaults_never_disagree() -> None:
    # One source of truth for every default: params.yaml as shipped loads to exactly the
    # dataclasses' defaults, block by block and key by key.
    import dataclasses

    loaded, defaults = load_params(REPO_PARAMS), Params()
    for block in dataclasses.fields(Params):
        a, b = getattr(loaded, block.name), getattr(defaults, block.name)
        for key in dataclasses.fields(a):
            assert getattr(a, key.name) == getattr(b, key.name), f"{block.name}.{key.name}"
    raw = yaml.safe_load(REPO_PARAMS.read_text(encoding="utf-8"))
    # And params.yaml spells out every key, so that a user sees what they can set.
    for block in dataclasses.fields(Params):
        assert set(raw[block.name]) == {f.name for f in dataclasses.fields(
            getattr(defaults, block.name))}, block.name
