"""The JAX backend beside TensorFlow: the package runs on it without TensorFlow, exactly and with every intervention."""

import json
import os

import pytest
import yaml

from conftest import repro, tiny_params

JAX = {"KERAS_BACKEND": "jax"}


def _project(root, **sweep_training):
    root.mkdir(parents=True)
    raw = tiny_params()
    raw["sweeps"]["grid"]["training"].update(sweep_training)
    (root / "params.yaml").write_text(yaml.safe_dump(raw), encoding="utf-8")
    return root


def test_under_jax_the_package_trains_without_ever_importing_tensorflow(tmp_path):
    root = _project(tmp_path / "p", dropout=0.1, update_noise=0.001, weight_noise=0.01, decay_towards="init")
    script = (
        "import sys\n"
        "from click.testing import CliRunner\n"
        "from repro import cli\n"
        "for args in (['generate'], ['train', 'tiny'], ['train', 'grid/add-adamw-seed0'], ['evaluate', 'tiny'], ['env']):\n"
        "    result = CliRunner().invoke(cli.main, args, catch_exceptions=False)\n"
        "    assert result.exit_code == 0, (args, result.output)\n"
        "loaded = sorted(m for m in sys.modules if m == 'tensorflow' or m.startswith('tensorflow.'))\n"
        "print('tensorflow modules:', len(loaded))\n"
    )
    env = {**os.environ, **JAX}
    import subprocess
    import sys

    from conftest import REPO
    result = subprocess.run([sys.executable, "-c", script], cwd=root, capture_output=True, text=True,
                            env={**env, "PYTHONPATH": str(REPO)})
    assert result.returncode == 0, result.stderr
    assert "tensorflow modules: 0" in result.stdout
    record = json.loads((root / "runs/grid/add-adamw-seed0/add-0.5-0-adamw/run.json").read_text())
    assert record["determinism"]["backend"] == "jax" and record["determinism"]["precision"] == "fp32"
    assert record["group"] == {"name": "grid/add-adamw-seed0", "runs": 2, "position": 0, "shards": 2}


@pytest.mark.slow
def test_jax_gives_the_same_bytes_twice_and_from_its_compilation_cache_and_other_bytes_than_tensorflow(tmp_path):
    # paper/device.sh trains with JAX's persistent compilation cache: the second process that uses it loads
    # the programs the first one compiled, and must give the bytes of a process that compiled them itself.
    cache = tmp_path / "jax-cache"
    cached = {**JAX, "JAX_COMPILATION_CACHE_DIR": str(cache), "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
              "JAX_LOG_COMPILES": "1"}  # logs each cache hit as a warning
    outputs, hits = {}, {}
    for name, env in (("jax1", JAX), ("jax2", cached), ("jax3", cached), ("tf", {"KERAS_BACKEND": "tensorflow"})):
        root = _project(tmp_path / name)
        log = repro("train", "grid/s5_mul-minibatch_adam-seed0", cwd=root, env={**os.environ, **env}).stderr
        folder = root / "runs/grid/s5_mul-minibatch_adam-seed0"
        outputs[name] = {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*"))
                         if p.name in ("history.csv", "model.weights.h5", "run.json")}
        hits[name] = log.count("Persistent compilation cache hit for 'jit__train_chunk_function'")
    assert len(outputs["jax1"]) == 6
    assert outputs["jax1"] == outputs["jax2"] == outputs["jax3"]
    assert hits["jax2"] == 0 and hits["jax3"] == 1  # jax3's training program came from jax2's compilation
    assert outputs["jax1"] != outputs["tf"]  # another backend: other random numbers and round-off, recorded
