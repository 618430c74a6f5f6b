"""The package's architecture, checked: the layer rule, and dvc.yaml's honest deps.

Layers from top to bottom (a module may import its own layer's package and any layer
below, never one above; packages on one layer are independent of each other):

    __main__ > cli > stages > serving | reporting > model > features | sim > data
    > config > contract > paths | progress > errors

The package root (``refundguard/__init__.py``) only names ``__version__`` and a lazy
``Scorer``; it sits at the bottom for importers and is not itself checked.
"""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

import pytest
import yaml
from tests.fixtures import LAYERS, REPO

PACKAGE = REPO / "src" / "refundguard"
# The features stage runs the Spark engine that the CLI hands it (features.engine: spark).
STAGE_EXTRAS: dict[str, tuple[str, ...]] = {"features": ("refundguard.features.spark",)}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def unit_of(module: str) -> str:
    """The layer unit of a module: its subpackage, or its own name at the top level."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def level(unit: str) -> int:
    return next(i for i, names in enumerate(LAYERS) if unit in names)


def module_file(module: str) -> Path:
    base = PACKAGE.parent.joinpath(*module.split("."))
    return base / "__init__.py" if base.is_dir() else base.with_suffix(".py")


@cache
def imports_of(module: str, *, lazy: bool = True) -> frozenset[str]:
    """refundguard modules a module imports (in function bodies too, unless ``lazy`` off)."""
    tree = ast.parse(module_file(module).read_text(encoding="utf-8"))
    nodes = ast.walk(tree) if lazy else iter(tree.body)
    found: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if not node.module.startswith("refundguard"):
                continue
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                found.add(sub if module_file(sub).exists() else node.module)
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("refundguard")}
    found = {m.replace("refundguard.__version__", "refundguard") for m in found}
    return frozenset(m for m in found if m != module)


# Modules whose function-level imports a stage does not run: the CLI's other commands, and
# the package root's lazy ``Scorer``.
SHALLOW = frozenset({"refundguard", "refundguard.cli"})


def closure(start: list[str]) -> set[str]:
    """Every module that importing ``start`` runs, function-level imports included."""
    seen: set[str] = set()
    todo = list(start)
    while todo:
        mod = todo.pop()
        if mod in seen:
            continue
        seen.add(mod)
        todo.extend(imports_of(mod, lazy=mod not in SHALLOW))
        # Importing a.b.c runs a/__init__.py and a/b/__init__.py first.
        parts = mod.split(".")
        todo.extend(".".join(parts[:i]) for i in range(1, len(parts)))
    return seen


ALL_MODULES = sorted(module_name(p) for p in PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("module", [m for m in ALL_MODULES if m != "refundguard"])
def test_imports_follow_the_layer_rule(module: str) -> None:
    mine = unit_of(module)
    wrong = [
        f"{target} ({unit_of(target)})"
        for target in sorted(imports_of(module))
        if unit_of(target) != mine and level(unit_of(target)) <= level(mine)
    ]
    assert not wrong, f"{module} ({mine}) imports from its own layer or above: {wrong}"


def test_every_module_has_a_layer() -> None:
    for module in ALL_MODULES:
        level(unit_of(module))  # StopIteration: a new subpackage without a layer


def test_nothing_but_the_cli_imports_a_stage() -> None:
    users = {
        m for m in ALL_MODULES
        if unit_of(m) != "stages" and any(unit_of(t) == "stages" for t in imports_of(m))
    }
    assert users == {"refundguard.cli"}


def test_there_is_no_import_cycle() -> None:
    # Function-level imports count too (a lazy import is still a cycle in the design);
    # only the CLI's commands and the package root's lazy Scorer are left out.
    graph = {m: imports_of(m, lazy=m not in SHALLOW) for m in ALL_MODULES}
    state: dict[str, int] = {}

    def visit(mod: str, trail: tuple[str, ...]) -> None:
        if state.get(mod) == 2:
            return
        assert state.get(mod) != 1, f"import cycle: {' -> '.join((*trail, mod))}"
        state[mod] = 1
        for nxt in graph.get(mod, ()):
            visit(nxt, (*trail, mod))
        state[mod] = 2

    for mod in ALL_MODULES:
        visit(mod, ())


def stage_code(stage: str) -> set[str]:
    """Files (relative to the repository) that ``refundguard <stage>`` runs."""
    run = closure([f"refundguard.stages.{stage}", *STAGE_EXTRAS.get(stage, ())])
    # The CLI itself and what it imports at module level run for every stage.
    run |= closure(["refundguard.cli"])
    return {module_file(m).relative_to(REPO).as_posix() for m in run}


def _stages() -> dict[str, dict[str, object]]:
    spec = yaml.safe_load((REPO / "dvc.yaml").read_text(encoding="utf-8"))
    return spec["stages"]


@pytest.mark.parametrize("stage", sorted(_stages()))
def test_dvc_deps_cover_all_the_code_a_stage_runs(stage: str) -> None:
    spec = _stages()[stage]
    spec = spec.get("do", spec)  # type: ignore[assignment]
    deps = [str(d) for d in spec["deps"]]  # type: ignore[index]
    module = f"refundguard.stages.{stage}"
    assert module_file(module).exists(), f"dvc stage {stage} has no module {module}"
    files = stage_code(stage)
    uncovered = sorted(f for f in files if not any(f == d or f.startswith(d.rstrip("/") + "/")
                                                    for d in deps))
    assert not uncovered, f"dvc.yaml stage {stage} runs code it does not list: {uncovered}"


@pytest.mark.parametrize("stage", sorted(_stages()))
def test_dvc_params_exist(stage: str) -> None:
    spec = _stages()[stage]
    spec = spec.get("do", spec)  # type: ignore[assignment]
    params = yaml.safe_load((REPO / "params.yaml").read_text(encoding="utf-8"))
    for key in spec.get("params", []):  # type: ignore[union-attr]
        node: object = params
        for part in str(key).split("."):
            assert isinstance(node, dict) and part in node, f"{stage}: {key} not in params.yaml"
            node = node[part]
