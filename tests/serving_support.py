"""Helpers shared by the tests of the served scorer: start and stop a server, talk to it."""

from __future__ import annotations

import json
import math
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd
from tests.fixtures import VENV_BIN, project_env

STARTUP_SECONDS = 180


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return int(r.status)
    except (urllib.error.URLError, OSError):
        return 0


def strict_json(raw: bytes | str) -> Any:
    """Parse JSON, refusing NaN and Infinity (Python writes them; JSON has no such values)."""

    def refuse(name: str) -> Any:
        raise AssertionError(f"invalid JSON: {name} in the answer")

    return json.loads(raw, parse_constant=refuse)


def _post(url: str, body: dict[str, Any]) -> tuple[int, Any]:
    # json.dumps writes floats with repr (exact round trip); NaN was replaced by null.
    req = urllib.request.Request(url, data=json.dumps(body, allow_nan=False).encode(),
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return int(r.status), strict_json(r.read())
    except urllib.error.HTTPError as e:
        return int(e.code), strict_json(e.read() or b"null")


@contextmanager
def serving(model_dir: Path, root: Path, log: Path) -> Iterator[str]:
    """Serve a scorer folder with `mlflow models serve` on a free port; yield its URL."""
    port = _free_port()
    with log.open("w") as out:
        # A session of its own, so that stopping it stops uvicorn, its child, too.
        proc = subprocess.Popen(
            [str(VENV_BIN / "mlflow"), "models", "serve", "-m", str(model_dir),
             "--env-manager", "local", "-p", str(port), "-h", "127.0.0.1"],
            cwd=root, env=project_env(root), stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        while _get(f"{url}/ping") != 200:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"server did not start:\n{log.read_text()[-3000:]}")
            time.sleep(0.25)
        yield url
    finally:
        _stop(proc)
    assert _get(f"{url}/ping") == 0, "server still answers after being stopped"


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the server's process group; wait for uvicorn's graceful exit, else kill."""
    os.killpg(proc.pid, signal.SIGTERM)
    proc.wait(timeout=30)
    deadline = time.monotonic() + 30
    while _group_alive(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if _group_alive(proc.pid):
        os.killpg(proc.pid, signal.SIGKILL)
        raise AssertionError("the server did not stop within 30 s of SIGTERM")


def cells(frame: pd.DataFrame) -> list[list[Any]]:
    """The frame's rows as JSON-ready lists of cells, NaN written as None."""
    return [[None if isinstance(v, float) and math.isnan(v) else v for v in row]
            for row in frame.astype(object).to_numpy().tolist()]


def assert_short_client_error(status: int, answer: Any, *words: str) -> None:
    """A 4xx whose one-line message names what is wrong, with no stack trace or echo."""
    assert 400 <= status < 500, (status, answer)
    assert isinstance(answer, dict) and isinstance(answer.get("message"), str), answer
    message = answer["message"]
    assert len(message) < 300 and "\n" not in message, message
    assert "stack_trace" not in answer and "Traceback" not in json.dumps(answer), answer
    for word in words:
        assert word in message, (word, message)
