"""Slices: deadlines, Ctrl-C, checkpoints between log points, and in-flight state moved between folders."""

import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tarfile
import time

import numpy as np
import pytest
import yaml

from conftest import REPO, repro, start_up_seconds, tiny_params
from repro import checkpoints, config, embeddings, run_folder

OUTPUTS = ("history.csv", "model.weights.h5", "run.json")
LONG = dict(updates=20_000, log_points=40)


def _prepare(root, checkpoint_seconds=0, **run_overrides):
    root.mkdir(parents=True, exist_ok=True)
    params = tiny_params(**run_overrides)
    params["execution"]["checkpoint_seconds"] = checkpoint_seconds
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    repro("generate", cwd=root)
    return root


def _meta(path):
    with np.load(path) as saved:
        return json.loads(str(saved["meta"]))


def _stop_mid_way(root):
    """`repro train tiny`, stopped by Ctrl-C once it has checkpointed past update 0: at any speed of machine, a
    slice that ends mid-way (as a deadline ends one: the same path, test_a_deadline_checkpoints... times that)."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    process = subprocess.Popen([sys.executable, "-m", "repro", "train", "tiny"], cwd=root, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    path = root / "checkpoints/tiny/0.npz"
    try:
        while process.poll() is None and not (path.is_file() and _meta(path)["updates"] > 0):
            time.sleep(0.05)
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=120)
    finally:
        process.kill()
    found = re.search(r"stopped at update ([\d,]+) of", out)
    assert found, f"the run never stopped mid-way:\n{out}{err}"
    return int(found.group(1).replace(",", ""))


@pytest.mark.slow
def test_a_run_packed_mid_way_and_unpacked_elsewhere_ends_byte_identical(tmp_path):
    whole = _prepare(tmp_path / "whole", **LONG)
    repro("train", "tiny", cwd=whole)
    # Trained again and stopped mid-way (a deadline, Ctrl-C, SIGTERM): the complete run stays, not a partial one.
    kept = {name: (whole / "runs/tiny" / name).read_bytes() for name in OUTPUTS}
    _stop_mid_way(whole)
    assert {name: (whole / "runs/tiny" / name).read_bytes() for name in OUTPUTS} == kept
    shutil.rmtree(whole / "checkpoints")

    here = _prepare(tmp_path / "here", **LONG)
    reached = _stop_mid_way(here)
    assert 0 < reached < LONG["updates"]
    # A stopped named run is a partial result: its history so far, no weights, and how far it got.
    partial = json.loads((here / "runs/tiny/run.json").read_text())[run_folder.PARTIAL]
    assert partial["budget"] == LONG["updates"] and 0 < partial["updates"] <= reached
    assert not (here / "runs/tiny/model.weights.h5").exists()
    assert "run again to continue" in repro("train", "tiny", "--for", "0s", cwd=here).stdout  # nothing lost
    # ...which evaluate, figures and `repro trained` take as such.
    state = f"train@tiny: partial, trained to {partial['updates']:,} of {LONG['updates']:,} updates"
    assert state in repro("trained", cwd=here).stdout
    assert "train@tiny" in repro("trained", "--partial", "--stages", cwd=here).stdout
    assert "train@tiny" not in repro("trained", "--stages", cwd=here).stdout
    repro("evaluate", "tiny", cwd=here)
    assert json.loads((here / "records/tiny.json").read_text())[run_folder.PARTIAL] == partial
    assert json.loads((here / "metrics/tiny.json").read_text())[run_folder.PARTIAL] == partial
    assert (here / "histories/tiny.csv").read_bytes() == (here / "runs/tiny/history.csv").read_bytes()
    repro("figures", "curves", cwd=here)
    run = config.load(here / "params.yaml").run("tiny")
    with pytest.raises(config.ConfigError, match="a partial run keeps no weights; Figure 3 needs its last"):
        embeddings.load_output_rows(here / "runs/tiny", run)

    repro("pack", "tiny", "state.tar", cwd=here)
    there = _prepare(tmp_path / "there", **LONG)
    assert "unpacked (update" in repro("unpack", str(here / "state.tar"), "tiny", cwd=there).stdout
    resumed = repro("train", "tiny", cwd=there)
    assert f"resuming from update {reached}" in resumed.stderr
    for name in OUTPUTS:
        assert (there / "runs/tiny" / name).read_bytes() == (whole / "runs/tiny" / name).read_bytes(), name
    slices = json.loads((there / "runs/tiny/provenance.json").read_text())["slices"]
    assert slices[0]["updates"][0] == 0 and slices[-1]["updates"] == [reached, LONG["updates"]]
    assert all(a["updates"][1] == b["updates"][0] for a, b in zip(slices, slices[1:]))  # contiguous
    assert {"host", "cpu", "vector_extensions", "backend", "device", "seconds", "commit"} <= set(slices[-1])
    assert not (there / "checkpoints/tiny").exists()  # gone once the run's outputs are written
    assert "train@tiny: complete" in repro("trained", cwd=there).stdout
    (there / "runs/tiny/history.csv").unlink()  # run.json alone is no trained run
    assert "train@tiny: not trained" in repro("trained", cwd=there).stdout


@pytest.mark.slow
def test_a_deadline_checkpoints_within_seconds_whatever_the_log_spacing(tmp_path):
    # Two log points over 10^6 updates: the only log point before the end is update 1.
    root = _prepare(tmp_path / "run", checkpoint_seconds=3600, updates=1_000_000, log_points=2)
    started = time.monotonic()
    # The deadline counts from the process's start: a start-up, a compilation, and 5 s of training.
    seconds = 2 * start_up_seconds() + 5
    result = repro("train", "tiny", "--for", f"{seconds:.1f}s", cwd=root)
    took = time.monotonic() - started
    meta = _meta(root / "checkpoints/tiny/0.npz")
    assert "run again to continue" in result.stdout and result.returncode == 0
    assert 1 < meta["updates"] < 1_000_000 and meta["updates"] % 256 == 1  # between log points, on a call boundary
    assert took < seconds + 60, f"a {seconds:.0f} s slice took {took:.0f} s"  # the whole run would take minutes


@pytest.mark.slow
def test_checkpoints_come_every_checkpoint_seconds_between_log_points(tmp_path):
    root = _prepare(tmp_path / "run", checkpoint_seconds=1, updates=1_000_000, log_points=2)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    process = subprocess.Popen([sys.executable, "-m", "repro", "train", "tiny"], cwd=root, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    path, seen = root / "checkpoints/tiny/0.npz", set()
    try:
        deadline = time.monotonic() + 90
        while len(seen) < 3 and time.monotonic() < deadline and process.poll() is None:
            if path.is_file():
                seen.add(_meta(path)["updates"])
            time.sleep(0.2)
        assert len(seen) >= 3 and max(seen) > 1, seen  # new checkpoints while no log point passed

        process.send_signal(signal.SIGINT)  # Ctrl-C: a checkpoint at the update reached, within seconds
        interrupted = time.monotonic()
        out, err = process.communicate(timeout=60)
    finally:
        process.kill()
    assert time.monotonic() - interrupted < 20
    assert process.returncode == 130 and "SIGINT" in err and "run again to continue" in out, (out, err)
    stopped = int(re.search(r"stopped at update ([\d,]+)", out).group(1).replace(",", ""))
    assert _meta(path)["updates"] == stopped >= max(seen)
    resumed = repro("train", "tiny", "--for", f"{start_up_seconds() + 3:.1f}s", cwd=root)
    assert f"resuming from update {stopped}" in resumed.stderr


def test_the_code_digest_ignores_comments_and_docstrings_but_not_code():
    source = 'def f(x):\n    """Doubles."""\n    return 2 * x  # twice\n'
    assert checkpoints.source_digest(source) == checkpoints.source_digest("def f(x):\n    return 2 * x\n")
    assert checkpoints.source_digest(source) != checkpoints.source_digest("def f(x):\n    return 3 * x\n")
    assert set(checkpoints.code_digest()) == set(checkpoints.TRAINING_CODE)


def test_the_training_code_is_train_py_and_what_it_imports_and_not_the_runner():
    """checkpoints.TRAINING_CODE is read from the imports (issue 35), not kept by hand: the numerics' modules are in
    it; the runner, file formats and the stages, which decide no number, are not."""
    code = set(checkpoints.TRAINING_CODE)
    assert {"repro/train.py", "repro/models.py", "repro/backend.py", "repro/determinism.py", "repro/__init__.py"} <= code
    assert not code & {"repro/runner.py", "repro/checkpoints.py", "repro/files.py", "repro/run_folder.py",
                       "repro/stages/train.py", "repro/datasets.py"}


def _tar(path, entries):
    with tarfile.open(path, "w") as tar:
        for name, data, kind in entries:
            info = tarfile.TarInfo(name)
            if kind == "link":
                info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
                tar.addfile(info)
            else:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))


@pytest.mark.parametrize("entries, message", [
    ([("pack.json", b"{}", "file"), ("tiny/0.npz", b"", "link")], "not a plain checkpoint file"),
    ([("pack.json", b"{}", "file"), ("../outside.npz", b"x", "file")], "not a plain checkpoint file"),
    ([("tiny/0.npz", b"x", "file")], "has no pack.json"),
    ([("pack.json", b"{}", "file"), ("tiny/0.npz", b"garbage", "file")], "damaged"),
    ([("pack.json", b"{}", "file"), ("other/0.npz", b"x", "file")], "not a group of the target"),
])
def test_unpack_refuses_what_repro_pack_does_not_make_and_writes_nothing(tmp_path, entries, message):
    root = tmp_path / "run"
    root.mkdir()
    (root / "params.yaml").write_text(yaml.safe_dump(tiny_params()))
    _tar(root / "bad.tar", entries)
    result = repro("unpack", "bad.tar", "tiny", cwd=root, check=False)
    assert result.returncode == 1 and message in result.stderr, result.stderr
    assert not (root / "checkpoints").exists() and not (tmp_path / "outside.npz").exists()


def test_pack_says_when_there_is_nothing_to_pack(tmp_path):
    root = tmp_path / "run"
    root.mkdir()
    (root / "params.yaml").write_text(yaml.safe_dump(tiny_params()))
    result = repro("pack", "tiny", "state.tar", cwd=root, check=False)
    assert result.returncode == 1 and "no in-flight state of tiny" in result.stderr
    assert not (root / "state.tar").exists()


def _code(tmp_path, label, edit=None):
    """A copy of the repro package under tmp_path/label, its train.py changed by `edit(source)`."""
    import shutil

    folder = tmp_path / label
    shutil.copytree(REPO / "repro", folder / "repro", ignore=shutil.ignore_patterns("__pycache__"))
    if edit is not None:
        path = folder / "repro/train.py"
        path.write_text(edit(path.read_text()))
    return folder


def _repro_with(code, *args, cwd):
    env = {**os.environ, "PYTHONPATH": str(code)}
    return subprocess.run([sys.executable, "-m", "repro", *args], cwd=cwd, env=env, capture_output=True, text=True)


@pytest.mark.slow
def test_a_checkpoint_is_adopted_across_a_code_change_only_where_both_codes_continue_it_alike(tmp_path):
    whole = _prepare(tmp_path / "whole", **LONG)
    repro("train", "tiny", cwd=whole)
    # Trained again and stopped mid-way (a deadline, Ctrl-C, SIGTERM): the complete run stays, not a partial one.
    kept = {name: (whole / "runs/tiny" / name).read_bytes() for name in OUTPUTS}
    _stop_mid_way(whole)
    assert {name: (whole / "runs/tiny" / name).read_bytes() for name in OUTPUTS} == kept
    shutil.rmtree(whole / "checkpoints")
    root = _prepare(tmp_path / "root", **LONG)
    reached = _stop_mid_way(root)  # written by this checkout's code
    checkpoint = root / "checkpoints/tiny/0.npz"
    before = checkpoint.read_bytes()
    refactored = _code(tmp_path, "refactored", lambda s: s + "\n\ndef _a_new_helper():\n    return 1\n")
    different = _code(tmp_path, "different", lambda s: s.replace('(ops.sqrt(v) + h["epsilon"])',
                                                                 '(ops.sqrt(v) + 2 * h["epsilon"])'))
    # Code that computes otherwise is refused, and the checkpoint stays as it was.
    refused = _repro_with(different, "adopt", "tiny", "--old-code", str(REPO), "--updates", "64", cwd=root)
    assert refused.returncode == 1 and "continues it differently" in refused.stderr, refused.stderr
    assert checkpoint.read_bytes() == before
    # The old code must be the code that wrote it.
    wrong = _repro_with(refactored, "adopt", "tiny", "--old-code", str(different), cwd=root)
    assert wrong.returncode == 1 and "was not written by the code under" in wrong.stderr, wrong.stderr
    # Adopted, the checkpoint resumes under the new code and ends with the same bytes as an unbroken run.
    adopted = _repro_with(refactored, "adopt", "tiny", "--old-code", str(REPO), "--updates", "64", cwd=root)
    assert adopted.returncode == 0 and "adopted" in adopted.stdout, adopted.stderr
    assert _meta(checkpoint)["slices"][-1]["code_changed_after"]["identical"] is True
    resumed = _repro_with(refactored, "train", "tiny", cwd=root)
    assert resumed.returncode == 0 and f"resuming from update {reached}" in resumed.stderr, resumed.stderr
    for name in OUTPUTS:
        assert (root / "runs/tiny" / name).read_bytes() == (whole / "runs/tiny" / name).read_bytes(), name
    slices = json.loads((root / "runs/tiny/provenance.json").read_text())["slices"]
    assert slices[-2]["code_changed_after"]["updates"] == [reached, reached + 64]
