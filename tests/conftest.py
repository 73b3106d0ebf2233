"""Shared fixtures: a tiny parameter file and a way to run `repro` in a fresh process."""

from __future__ import annotations

import functools
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]


def tiny_params(**run_overrides) -> dict:
    """Small enough to train in seconds: x + y mod 23, the MLP, a few hundred updates.

    One tiny sweep ("grid": S5 and x + y at two fractions) stands in for every figure's sweep.
    """
    return {
        "scale": "tiny",
        "datasets": {"add_23": {"operation": "add", "modulus": 23, "train_fraction": 0.5, "seed": 0}},
        "models": {"mlp": {"kind": "mlp", "hidden": 32}},
        "training": {"learning_rate": 0.01, "weight_decay": 1.0, "updates": 300, "log_points": 20},
        "interventions": {"adamw": {}, "minibatch_adam": {"weight_decay": 0.0}},
        "runs": {"tiny": {"dataset": "add_23", "model": "mlp", **run_overrides}},
        "sweeps": {"grid": {"model": "mlp", "modulus": 23, "operations": ["s5_mul", "add"], "fractions": [0.5, 0.8],
                            "seeds": [0], "interventions": ["adamw", "minibatch_adam"], "training": {"updates": 100}}},
        "figures": {"curves": ["tiny"], "table": "add_23", "fractions": "grid", "interventions": "grid",
                    "operations": "grid", "embeddings": ["grid/s5_mul-0.8-0-adamw", "tiny", "grid/add-0.5-0-adamw"],
                    "decay_seeds": None, "progress": ["tiny"]},
        "progress": ["tiny"],
        "execution": {"checkpoint_seconds": 0},
    }


def tiny_scale(params_file: Path, scale: str, fractions: dict[str, list[float]]) -> dict:
    """A real params file with its names and shape kept, and every model, budget and grid cut to seconds.

    `fractions`: each sweep's new fractions (one seed each); the callers cut operations and interventions.
    """
    params = yaml.safe_load(params_file.read_text())
    params["scale"] = scale
    for dataset in params["datasets"].values():
        dataset["modulus"] = 23
    params["models"]["transformer"].update(layers=1, width=32, heads=2, feedforward=64)
    params["models"]["mlp"]["hidden"] = 32
    params["training"].update(updates=60, log_points=8)
    for run in params["runs"].values():
        run.update(updates=60, log_points=8)
    for name, grid in fractions.items():
        sweep = params["sweeps"][name]
        sweep.update(modulus=23, fractions=grid, seeds=sweep["seeds"][:1])
        sweep["training"]["updates"] = 60
    return params


@functools.cache
def start_up_seconds(backend: str = "tensorflow") -> float:
    """Seconds this machine takes to start a process that loads Keras on `backend` (as every `repro train` does),
    measured once per test session: the unit of the tests' deadlines (`--for`, leases, campaign slices), so that
    a slower or busier CPU gets longer ones instead of failing (issue 33: a fixed 30 s left an AVX2 EPYC no
    time to start)."""
    began = time.monotonic()
    subprocess.run([sys.executable, "-c", "import repro.backend"], check=True, capture_output=True,
                   env={**os.environ, "KERAS_BACKEND": backend, "PYTHONPATH": str(REPO)})
    return time.monotonic() - began


def pytest_collection_modifyitems(items):
    """The tests marked slow first (a stable sort keeps each group's order), so that xdist's two workers start
    on the long ones and neither is left with one at the end while the other idles (with --maxschedchunk 1,
    pyproject.toml: each worker takes the next test in this order when it is free)."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """A scratch working directory holding a tiny params.yaml."""
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(tiny_params()), encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def repro(*args: str, cwd: Path, check: bool = True, env: dict | None = None, **kwargs) -> subprocess.CompletedProcess:
    """Runs `python -m repro ARGS` in its own process, as DVC would (in `env`, default this one's)."""
    env = {**(os.environ if env is None else env), "PYTHONPATH": str(REPO)}
    result = subprocess.run([sys.executable, "-m", "repro", *args], cwd=cwd, env=env,
                            capture_output=True, text=True, **kwargs)
    if check and result.returncode != 0:
        raise AssertionError(f"repro {' '.join(args)} failed:\n{result.stderr}")
    return result
