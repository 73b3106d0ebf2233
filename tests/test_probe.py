"""The reliability probe's lesser defects (issue 33), each reproduced as the probe found it, each now a clear error.

The five that could lose data or commit a wrong result have their tests beside the code they touch:
test_paper.py (the campaign's refused state and failed training, an unreadable lease state), test_train.py
(--must-resume), test_checkpoints.py (a complete run kept) and test_config.py (an intervention named with '-').
"""

import errno
import io
import json
import subprocess
import tarfile

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from conftest import REPO, repro, tiny_params
from repro import checkpoints, config, embeddings, history_csv, run_folder
from repro.tools import adopt, bench
from repro.cli import main
from repro.config import ConfigError


def _pack_with(tmp_path, member: str, data: bytes, size: int | None = None) -> str:
    """A pack holding pack.json and one member; `size` makes its header claim another size."""
    target = tmp_path / "state.tar"
    with tarfile.open(target, "w") as tar:
        for name, content in ((checkpoints.PACK_JSON, b"{}"), (member, data)):
            info = tarfile.TarInfo(name)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
    if size is not None:  # rewrite the member's header to claim `size` bytes
        raw = bytearray(target.read_bytes())
        header = raw.index(member.encode())
        info = tarfile.TarInfo(member)
        info.size = size
        raw[header:header + 512] = info.tobuf(format=tarfile.GNU_FORMAT)[:512]
        target.write_bytes(bytes(raw))
    return target


def test_a_pack_claiming_a_huge_member_is_refused_before_it_is_read(tmp_path):
    source = _pack_with(tmp_path, "tiny/0.npz", b"x" * 100, size=3 * 2 ** 30)
    with pytest.raises(ConfigError, match="claims 3,221,225,472 bytes in a file of|not a readable pack"):
        checkpoints.unpack(source, tmp_path / "checkpoints")
    assert not (tmp_path / "checkpoints").exists()


def test_a_pack_with_tampered_metadata_is_refused_whole(tmp_path):
    buffer = io.BytesIO()
    np.savez(buffer, meta=np.array(json.dumps({"updates": "12", "identity": {}, "slices": []})), history=np.zeros(1))
    source = _pack_with(tmp_path, "tiny/0.npz", buffer.getvalue())
    with pytest.raises(ConfigError, match="tiny/0.npz is damaged .*nothing unpacked"):
        checkpoints.unpack(source, tmp_path / "checkpoints")
    with pytest.raises(ConfigError, match="is damaged"):
        checkpoints.unpack(source, tmp_path / "checkpoints", check_only=True)
    assert not (tmp_path / "checkpoints").exists()


@pytest.mark.parametrize("edit, found", [
    (lambda lines: lines[:5] + lines[6:], "row 6 logs update"),  # a row deleted (repro progress gave a traceback)
    (lambda lines: lines[:5] + [lines[4]] + lines[5:], "row 6 logs update"),  # a row repeated (accepted)
])
def test_a_history_with_a_row_deleted_or_repeated_is_refused(workdir, edit, found):
    repro("generate", cwd=workdir)
    repro("train", "tiny", cwd=workdir)
    path = workdir / "runs/tiny/history.csv"
    path.write_text("\n".join(edit(path.read_text().splitlines())) + "\n")
    run = config.load(workdir / "params.yaml").run("tiny")
    with pytest.raises(ConfigError, match=f"{found}.*deleted, repeated or out of order"):
        history_csv.read(path, run)
    result = repro("progress", "tiny", cwd=workdir, check=False)
    assert result.returncode == 1 and "deleted, repeated or out of order" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_history_changed_after_training_is_not_called_round_off_on_the_machine_that_made_it(workdir):
    repro("generate", cwd=workdir)
    repro("train", "tiny", cwd=workdir)
    path = workdir / "runs/tiny/history.csv"
    lines = path.read_text().splitlines()
    cells = lines[-1].split(",")
    cells[1] = f"{float(cells[1]) * 1.01:.8g}"  # the last training loss, 1% off
    path.write_text("\n".join([*lines[:-1], ",".join(cells)]) + "\n")
    result = repro("progress", "tiny", cwd=workdir, check=False)
    assert result.returncode == 1 and "changed after training, or training is not deterministic" in result.stderr


def test_compare_says_which_history_logs_an_update_twice(tmp_path, monkeypatch):
    history = "update,train_loss\n0,4.5\n10,1.25\n"
    for name, text in {"histories/run.csv": history, "reports/claims.json": json.dumps({"claims": []})}.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    for command in (["init", "-q"], ["add", "."], ["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "r"]):
        subprocess.run(["git", *command], cwd=tmp_path, check=True)
    (tmp_path / "histories/run.csv").write_text(history + "10,1.25\n")
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["compare"])
    assert result.exit_code == 1 and "histories/run.csv here is damaged: update 10 is logged twice" in result.output


def test_a_full_or_read_only_disk_is_a_clear_error(workdir, monkeypatch):
    from repro import datasets

    def full(*_):
        raise OSError(errno.ENOSPC, "No space left on device", "data/add_23/equations.csv")

    monkeypatch.setattr(datasets, "write", full)
    result = CliRunner().invoke(main, ["generate"])
    assert result.exit_code == 1 and "could not write data/add_23/equations.csv: No space left on device" in result.output
    assert "intact" in result.output and result.exception is None or isinstance(result.exception, SystemExit)


def test_a_run_json_whose_run_is_null_says_to_retrain(workdir):
    repro("generate", cwd=workdir)
    repro("train", "tiny", cwd=workdir)
    path = workdir / "runs/tiny/run.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), "run": None}))
    with pytest.raises(ConfigError, match="is damaged .*no run.*retrain it"):
        run_folder.read(workdir / "runs/tiny", config.load(workdir / "params.yaml").run("tiny"))


def test_a_whole_weights_file_of_another_model_is_refused(workdir):
    import keras

    from repro import models
    from repro.config import ModelConfig

    repro("generate", cwd=workdir)
    repro("train", "tiny", cwd=workdir)
    other = models.build(ModelConfig("mlp", hidden=16), 23)  # the run's model has 32 hidden units
    other.save_weights(workdir / "runs/tiny/model.weights.h5")
    keras.backend.clear_session()
    with pytest.raises(ConfigError, match="holds weights of another shape than tiny's model"):
        embeddings.load_output_rows(workdir / "runs/tiny", config.load(workdir / "params.yaml").run("tiny"))


def test_adopt_reads_the_parameter_file_it_is_given(tmp_path):
    here, old = tmp_path / "here", tmp_path / "old"
    for root in (here, old):
        (root / "paper").mkdir(parents=True)
    (here / "paper/other.yaml").write_text("x")
    assert adopt._params(old, here, here / "paper/other.yaml") == (here / "paper/other.yaml").resolve()
    (old / "paper/other.yaml").write_text("x")
    assert adopt._params(old, here, here / "paper/other.yaml") == old / "paper/other.yaml"


def test_a_key_given_twice_in_params_yaml_is_refused(tmp_path):
    text = yaml.safe_dump(tiny_params()).replace("\ntraining:\n", "\ntraining:\n  seed: 5\n  seed: 6\n", 1)
    (tmp_path / "params.yaml").write_text(text)
    with pytest.raises(ConfigError, match="the key 'seed' is given twice"):
        config.load(tmp_path / "params.yaml")


@pytest.mark.parametrize("rate", ["nan", "inf", "-1"])
def test_rates_that_are_not_positive_finite_numbers_are_refused(rate, tmp_path):
    with pytest.raises(ConfigError, match="positive, finite number"):
        bench.parse_rates((f"transformer:1={rate}",), ["transformer"])
    estimate = tmp_path / "estimate.json"
    estimate.write_text(json.dumps({"group_seconds": {"a": float(rate)}}))
    with pytest.raises(ConfigError, match="has no seconds"):
        bench.read_estimate(estimate, ["a"])


def test_unpack_lists_a_tar_of_many_links_to_the_end_and_gives_modes_of_its_own(tmp_path):
    """device.sh unpack once died of SIGPIPE (exit 141, nothing said) on a tar of many links, and kept a file's
    0600 mode."""
    links = tmp_path / "runs-links.tar.gz"
    with tarfile.open(links, "w:gz") as tar:
        for i in range(3000):
            link = tarfile.TarInfo(f"runs/x/{i}")
            link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
            tar.addfile(link)
    result = subprocess.run(["bash", "paper/device.sh", "unpack", str(links)], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 1 and "other than plain files and folders" in result.stderr


def test_unpacked_runs_get_modes_of_their_own(tmp_path):
    """device.sh unpack kept an archive's 0600 modes; a run folder others cannot read breaks a shared checkout."""
    import os
    import shutil
    import sys

    from test_paper import tiny_paper_params

    made, here = tmp_path / "made", tmp_path / "here"
    for root in (made, here):
        (root / "paper").mkdir(parents=True)
        (root / "paper/params.yaml").write_text(yaml.safe_dump(tiny_paper_params(), sort_keys=False))
    shutil.copy(REPO / "paper/device.sh", here / "paper")
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHON": sys.executable}
    subprocess.run([sys.executable, "-m", "repro", "generate"], cwd=made / "paper", env=env, check=True,
                   capture_output=True)
    run = made / "paper/runs/add_decay"
    run.mkdir(parents=True)
    (run / "history.csv").write_text("update\n")
    (run / "history.csv").chmod(0o600)
    archive = tmp_path / "runs-1.tar.gz"
    subprocess.run(["tar", "-czf", str(archive), "data", "runs"], cwd=made / "paper", check=True)
    (here / "repro").symlink_to(REPO / "repro")
    subprocess.run(["bash", "paper/device.sh", "unpack", str(archive)], cwd=here, env=env, check=True,
                   capture_output=True)
    assert (here / "paper/runs/add_decay/history.csv").stat().st_mode & 0o777 == 0o644
