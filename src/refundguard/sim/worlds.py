"""Named worlds: the simulator's knobs for marketplaces unlike the default one.

A modelling choice must hold across worlds that differ in seed, history length, label
delay and coverage, and in where the export starts (the world sweep,
``benchmarks/bench_worlds.py``, runs each of these). ``refundguard simulate --world NAME``
writes one; params.yaml's ``simulate`` block still sets everything a world leaves alone.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, Final

from refundguard.config import SimulateParams
from refundguard.errors import ConfigError

DEFAULT_WORLD: Final = "default"
# Each preset: "seed" (the world's own seed) and SimulateParams fields.
WORLDS: Final[Mapping[str, Mapping[str, Any]]] = {
    # params.yaml's simulate block as it stands.
    DEFAULT_WORLD: {},
    # A platform in its first 14 months: fast labels, good coverage, fast growth.
    "young": {
        "seed": 101, "days": 420, "history_before_days": 0, "label_delay_days": (7, 30),
        "label_coverage": 0.67, "growth_per_year": 1.0, "dormant_share": 0.1,
    },
    # A mature marketplace exported mid-life: two years of history before the export.
    "mature": {
        "seed": 202, "days": 730, "history_before_days": 730, "label_delay_days": (30, 90),
        "label_coverage": 0.5, "dormant_share": 0.3, "office_share": 0.05,
        "close_on_label_share": 0.5, "spring_festival_dip": 0.6, "growth_per_year": 0.0,
    },
    # Slow, sparse labels and many sleepers over three years.
    "slow_labels": {
        "seed": 303, "days": 1095, "history_before_days": 365,
        "label_delay_days": (60, 180), "label_coverage": 0.33, "dormant_share": 0.7,
        "growth_per_year": 0.5, "office_share": 0.1, "close_on_label_share": 1.0,
        "spring_festival_dip": 0.8,
    },
    # An 18-month export of an old platform (three years of history before it).
    "short_export": {
        "seed": 404, "days": 540, "history_before_days": 1095, "label_delay_days": (14, 70),
        "label_coverage": 0.6, "dormant_share": 0.1, "growth_per_year": 0.2,
        "office_share": 0.02, "close_on_label_share": 0.2, "spring_festival_dip": 0.4,
        "false_report_rate": 0.04,
    },
}


def world_params(
    name: str, simulate: SimulateParams, seed: int
) -> tuple[SimulateParams, int]:
    """The simulator's parameters and seed for a named world.

    Args:
        name: A key of :data:`WORLDS`.
        simulate: params.yaml's simulate block (what the world does not set).
        seed: params.yaml's seed (used unless the world has its own).

    Returns:
        The world's parameters and seed.

    Raises:
        ConfigError: Unknown world name.
    """
    if name not in WORLDS:
        raise ConfigError(f"unknown world {name!r}; known: {', '.join(WORLDS)}")
    knobs = dict(WORLDS[name])
    own_seed = int(knobs.pop("seed", seed))
    return dataclasses.replace(simulate, **knobs), own_seed
