"""Simulate stage: write a simulated marketplace as the raw input tables."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

from refundguard.config import load_params
from refundguard.errors import ConfigError
from refundguard.paths import PARAMS_FILE, SIMULATED_DIR
from refundguard.sim.simulate import World, simulate_world, write_world
from refundguard.sim.worlds import DEFAULT_WORLD, world_params

log = logging.getLogger(__name__)


def main(
    params_path: Path = PARAMS_FILE,
    out_dir: Path = SIMULATED_DIR,
    *,
    n_buyers: int | None = None,
    days: int | None = None,
    seed: int | None = None,
    file_format: str | None = None,
    world: str = DEFAULT_WORLD,
) -> World:
    """Simulate the marketplace configured in params.yaml and write it to ``out_dir``.

    Args:
        params_path: params.yaml.
        out_dir: Destination folder.
        n_buyers: Override of ``simulate.n_buyers``.
        days: Override of ``simulate.days``.
        seed: Override of ``base.seed``.
        file_format: Override of ``simulate.file_format``.
        world: A named world (:data:`refundguard.sim.worlds.WORLDS`); its knobs and seed
            replace params.yaml's, and the overrides above still apply.

    Returns:
        The world written.

    Raises:
        ConfigError: An override is out of range.
    """
    params = load_params(params_path)
    base, world_seed = world_params(world, params.simulate, params.base.seed)
    overrides: dict[str, object] = {}
    if n_buyers is not None:
        overrides["n_buyers"] = n_buyers
    if days is not None:
        overrides["days"] = days
    if file_format is not None:
        if file_format not in ("parquet", "csv"):
            raise ConfigError(f"--format must be parquet or csv, got {file_format!r}")
        overrides["file_format"] = file_format
    sim = dataclasses.replace(base, **overrides)  # type: ignore[arg-type]
    written = simulate_world(sim, seed=world_seed if seed is None else seed)
    write_world(written, out_dir, sim.file_format)
    log.info(
        "simulated %d buyers, %d orders, %d refunds, %d reviews, %d labels -> %s",
        len(written.buyers),
        len(written.orders),
        len(written.refunds),
        len(written.reviews),
        len(written.labels),
        out_dir,
    )
    return written
