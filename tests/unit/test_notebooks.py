"""The notebooks in notebooks/ run top to bottom and are stored without outputs.

Each is executed with nbclient in a ``python3`` kernel of this interpreter (the venv's),
in an empty temporary folder, with IPython's and Jupyter's own files kept in a temporary
folder too. ``01_explore`` simulates its own small world (fast tier); ``02_explain`` reads
the session's pipeline run (the ``project`` fixture, so it is slow) through
``REFUNDGUARD_ROOT``.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import nbformat
import pytest
from jupyter_client.kernelspec import KernelSpecManager
from nbclient import NotebookClient
from tests.fixtures import REPO, project_env

from refundguard.contract.vocabulary import SEGMENTS, TIERS

NOTEBOOKS = REPO / "notebooks"
NAMES = ("01_explore.ipynb", "02_explain.ipynb")
CELL_TIMEOUT = 300  # seconds per cell


def _kernel_env(base: dict[str, str], tmp: Path) -> dict[str, str]:
    env = dict(base)
    # The inline backend draws figures into the notebook; a caller's MPLBACKEND=Agg would not.
    env.pop("MPLBACKEND", None)
    env.update(
        IPYTHONDIR=str(tmp / "ipython"),  # IPython's history database
        JUPYTER_RUNTIME_DIR=str(tmp / "runtime"),
        OMP_WAIT_POLICY="PASSIVE",
        PYDEVD_DISABLE_FILE_VALIDATION="1",
    )
    return env


def _run(name: str, tmp: Path, env: dict[str, str],
         monkeypatch: pytest.MonkeyPatch) -> tuple[nbformat.NotebookNode, Path]:
    """Execute a notebook in an empty folder; raise on the first failing cell."""
    work = tmp / "work"
    work.mkdir()
    # The connection file is written by this process, into the same temporary folder.
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", env["JUPYTER_RUNTIME_DIR"])
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    client = NotebookClient(nb, timeout=CELL_TIMEOUT, kernel_name="python3",
                            resources={"metadata": {"path": str(work)}})
    client.execute(env=env)
    return nb, work


def _outputs(nb: nbformat.NotebookNode) -> list[nbformat.NotebookNode]:
    return [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]


def _text(nb: nbformat.NotebookNode) -> str:
    parts = []
    for o in _outputs(nb):
        if o.output_type == "stream":
            parts.append(o.text)
        else:
            parts.append(str(o.get("data", {}).get("text/plain", "")))
    return "\n".join(parts)


def _check_clean_run(nb: nbformat.NotebookNode) -> None:
    outputs = _outputs(nb)
    assert not [o for o in outputs if o.output_type == "error"]
    # A reader should see no warnings either.
    stderr = [o.text for o in outputs if o.output_type == "stream" and o.name == "stderr"]
    assert not stderr, stderr


def _images(nb: nbformat.NotebookNode) -> int:
    return sum("image/png" in o.get("data", {}) for o in _outputs(nb))


def _tree(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("name", NAMES)
def test_notebook_is_stored_without_outputs(name: str) -> None:
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    nbformat.validate(nb)
    assert nb.metadata["kernelspec"]["name"] == "python3"
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and nb.cells[0].cell_type == "markdown"
    assert all(c.outputs == [] and c.execution_count is None for c in code), (
        f"{name}: clear the outputs before committing"
    )


def test_python3_kernel_is_this_interpreter() -> None:
    # jupyter_client starts a spec whose command is "python" with sys.executable.
    argv = KernelSpecManager().get_kernel_spec("python3").argv
    assert argv[0] in {"python", "python3", sys.executable}, argv


def test_explore_notebook_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    base = {k: v for k, v in os.environ.items() if k != "REFUNDGUARD_ROOT"}
    nb, work = _run("01_explore.ipynb", tmp_path, _kernel_env(base, tmp_path), monkeypatch)
    _check_clean_run(nb)
    text = _text(nb)
    assert "1,500 rows" in text  # the simulated buyers
    assert all(s in text for s in SEGMENTS)  # the behaviour table covers every segment
    assert re.search(r"\d+ features at 4 cutoffs: [\d,]+ buyer rows", text)
    assert _images(nb) >= 2  # behaviour by segment, feature distributions
    assert not any(work.iterdir()), "01_explore wrote files"


def test_explain_notebook_runs_on_the_project(project: Path, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    before = _tree(project)
    nb, work = _run("02_explain.ipynb", tmp_path, _kernel_env(project_env(project), tmp_path),
                    monkeypatch)
    _check_clean_run(nb)
    text = _text(nb)
    assert str(project.resolve()) in text  # it read the project given by REFUNDGUARD_ROOT
    assert re.search(r"[\d,]+ buyers scored as of \d{4}-\d{2}-\d{2}", text)
    # The riskiest buyer's calibrated probability may round to 1.0000.
    case = re.search(
        rf"buyer (\S+): tier ({'|'.join(TIERS)}), probability (0\.\d{{4}}|1\.0000)", text
    )
    assert case, text[-3000:]
    htmls = [o["data"]["text/html"] for o in _outputs(nb) if "text/html" in o.get("data", {})]
    assert any("<iframe srcdoc=" in h and case[1] in h for h in htmls)  # the case page
    assert "expected value" in text  # SHAP
    assert "cost if abuser" in text and "expected cost of" in text  # the tier costs
    assert _images(nb) >= 3  # probabilities, SHAP, expected cost per tier
    assert not any(work.iterdir()), "02_explain wrote files in its working folder"
    assert _tree(project) == before, "02_explain changed the project folder"
