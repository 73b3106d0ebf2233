"""Training: exact repeatability across processes, exact resume after a kill, and real grokking."""

import io
import json
import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest
import yaml

from conftest import REPO, repro, tiny_params
from repro import analysis, config, datasets, history_csv, runner, train

OUTPUTS = ("history.csv", "model.weights.h5", "run.json")


def _prepare(root, **run_overrides):
    root.mkdir(parents=True, exist_ok=True)
    (root / "params.yaml").write_text(yaml.safe_dump(tiny_params(**run_overrides)))
    repro("generate", cwd=root)
    return root


def test_log_schedule_is_log_spaced_and_ends_at_the_budget():
    points = history_csv.log_schedule(10_000, 50)
    assert points[0] == 0 and points[-1] == 10_000 and points == sorted(set(points))
    assert points[1:6] == [1, 2, 3, 4, 5]  # dense early, where the curves move fastest


def test_batch_is_capped_at_half_the_training_set():
    run = config.parse(tiny_params()).run("tiny")
    assert train.batch_size(run, 264) == 132
    assert train.batch_size(run, 5000) == 512


def _group(**overrides):
    """The tiny sweep's x + y group (two fractions), with `overrides` on every run."""
    raw = tiny_params()
    raw["sweeps"]["grid"]["training"].update(overrides)
    cfg = config.parse(raw)
    runs = [cfg.runs[name] for name in cfg.group("grid/add-adamw-seed0").members]
    return runs, [datasets.make(run.dataset) for run in runs]


def test_each_epoch_is_a_fresh_permutation_of_the_runs_own_training_rows():
    runs, data = _group()
    rows = [np.flatnonzero(d.train) for d in data]
    batches = train.Batches(rows, [10, 7], [0, 1])
    taken = batches.take(0, 130, width=10, length=160)
    assert taken.shape == (160, 2, 10) and not taken[130:].any()  # padded past the count
    for run, (size, own) in enumerate(zip([10, 7], rows)):
        per_epoch = len(own) // size
        epoch = taken[:per_epoch, run, :size]
        assert len(set(epoch.ravel())) == per_epoch * size and set(epoch.ravel()) <= set(own)
        assert not taken[:130, run, size:].any()  # padding beyond the run's own batch
        second = taken[per_epoch: 2 * per_epoch, run, :size]
        assert not np.array_equal(np.sort(epoch, axis=None), np.sort(second, axis=None)) or len(own) == per_epoch * size
    # The batch of update t does not depend on where a call starts.
    later = batches.take(13, 20, width=10, length=20)
    assert np.array_equal(later, taken[13:33])


def test_calls_split_anywhere_give_the_same_training():
    runs, data = _group()
    whole = train.GroupTrainer(runs, data)
    whole.train_updates(0, 100)
    pieces = train.GroupTrainer(runs, data)
    for start, stop in [(0, 7), (7, train.CHUNK_UPDATES // 3), (train.CHUNK_UPDATES // 3, 100)]:
        pieces.train_updates(start, stop)
    assert all(np.array_equal(a, b) for a, b in zip(whole.state_arrays(), pieces.state_arrays()))


def test_our_adamw_step_is_keras_adamw():
    """The stacked runs' AdamW (written in keras.ops) against keras.optimizers.AdamW, through warm-up and after."""
    import keras

    rng = np.random.default_rng(0)
    start = [rng.normal(size=(5, 3)).astype("float32"), rng.normal(size=(3,)).astype("float32")]
    grads = [[rng.normal(size=w.shape).astype("float32") for w in start] for _ in range(14)]
    variables = [keras.Variable(w) for w in start]
    class Warmup(keras.optimizers.schedules.LearningRateSchedule):  # the official code's: lr · min(1, t / 10)
        def __call__(self, step):
            return 0.01 * keras.ops.minimum(1.0, keras.ops.cast(step, "float32") / 10)

    reference = keras.optimizers.AdamW(learning_rate=Warmup(), weight_decay=0.5,
                                       beta_1=0.9, beta_2=0.98, epsilon=1e-8)
    h = {"learning_rate": np.float32(0.01), "weight_decay": np.float32(0.5), "beta_1": np.float32(0.9),
         "beta_2": np.float32(0.98), "epsilon": np.float32(1e-8), "warmup_updates": np.float32(10),
         "decay_to_init": np.float32(0.0)}
    params, moments, velocities = list(start), [np.zeros_like(w) for w in start], [np.zeros_like(w) for w in start]
    for step, g in enumerate(grads):
        reference.apply(g, variables)
        params, moments, velocities = train.adamw(params, g, moments, velocities, None, step, h)
        for mine, theirs in zip(params, variables):
            np.testing.assert_allclose(keras.ops.convert_to_numpy(mine), keras.ops.convert_to_numpy(theirs),
                                       rtol=2e-6, atol=1e-7)
    assert not np.allclose(keras.ops.convert_to_numpy(params[0]), start[0])


def test_a_run_trains_the_same_alone_and_inside_its_group():
    """On a CPU every run is a one-run shard, as alone: the same bits on either backend.

    On a GPU jax.vmap batches the group's products, which may round otherwise;
    so there the group, not the run, is what `repro verify` retrains.
    """
    runs, data = _group()
    group = train.GroupTrainer(runs, data)
    alone = train.GroupTrainer(runs[1:], data[1:])
    for trainer in (group, alone):
        trainer.train_updates(0, 60)
    together, by_itself = group.evaluate()[1], alone.evaluate()[0]
    if train.backend.accelerator() == "cpu":
        assert len(group.shards) == len(runs)
        assert np.array_equal(together, by_itself)
    else:
        np.testing.assert_allclose(together, by_itself, rtol=1e-5, atol=1e-6)


def test_each_compiled_function_is_first_called_by_one_thread_alone():
    """A signature's first call traces and compiles under one lock; later calls of it run at once."""
    import threading

    programs = train.Programs()
    lock, active, peak = threading.Lock(), [0], [0]

    def call():
        with lock:
            active[0] += 1
            peak[0] = max(peak[0], active[0])
        time.sleep(0.2)
        with lock:
            active[0] -= 1
        return "done"

    def together(signature):
        peak[0] = 0
        threads = [threading.Thread(target=programs.call, args=(signature, call)) for _ in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return peak[0]

    assert together(("train", 1)) == 1  # never seen: every thread waits for the one compiling
    assert together(("train", 1)) == 3  # compiled: all at once
    assert together(("train", 2)) == 1  # another shape compiles again, alone
    assert programs.call(("train", 1), lambda: 7) == 7


def test_a_sweep_trains_in_one_process_with_programs_shared_across_groups(tmp_path):
    """Groups of one table size share their compiled programs; each group gives the bytes it gives alone."""
    raw = tiny_params()
    cfg = config.parse(raw)
    groups = cfg.trained_by("grid")
    assert [g.name for g in groups] == ["grid/s5_mul-adamw-seed0", "grid/s5_mul-minibatch_adam-seed0", "grid/add-adamw-seed0",
                                        "grid/add-minibatch_adam-seed0"]
    jobs = [(g.name, [cfg.runs[m] for m in g.members], [datasets.make(cfg.runs[m].dataset) for m in g.members])
            for g in groups]
    together = runner.train_groups("grid", jobs, tmp_path / "sweep", tmp_path / "ckpt", checkpoint_seconds=0)
    alone = runner.train_groups(jobs[2][0], [jobs[2]], tmp_path / "alone", tmp_path / "ckpt2", checkpoint_seconds=0)
    assert np.array_equal(together.histories[2], alone.histories[0]) and not together.stopped
    for name in OUTPUTS[:2]:
        assert (tmp_path / "sweep/add-adamw-seed0/add-0.5-0-adamw" / name).read_bytes() == \
            (tmp_path / "alone/add-0.5-0-adamw" / name).read_bytes()
    assert not list((tmp_path / "ckpt").rglob("*.npz"))  # checkpoints go once the outputs are written
    trainers = [train.GroupTrainer(runs, data) for _, runs, data in jobs]
    programs = {id(s.program) for t in trainers for s in t.shards}
    assert len(programs) == len(trainers)  # a trainer of its own compiles its own
    shared = train.Programs()
    trainers = [train.GroupTrainer(runs, data, programs=shared) for _, runs, data in jobs]
    assert len({id(s.program) for t in trainers for s in t.shards}) == 2  # one per table size: S5, x + y mod 23


def test_a_run_whose_weights_are_not_kept_records_their_digest(tmp_path):
    """keep_weights (the paper scale's, for weights too many to bring back): the digest pins the same bytes."""
    from repro import embeddings, models, run_folder

    cfg = config.parse(tiny_params())
    group = cfg.group("grid/add-adamw-seed0")
    jobs = [(group.name, [cfg.runs[m] for m in group.members], [datasets.make(cfg.runs[m].dataset) for m in group.members])]
    kept, dropped = "grid/add-0.5-0-adamw", "grid/add-0.8-0-adamw"
    runner.train_groups(group.name, jobs, tmp_path / "some", tmp_path / "ckpt", checkpoint_seconds=0,
                       keeps_weights=lambda run: run.name == kept)
    runner.train_groups(group.name, jobs, tmp_path / "all", tmp_path / "ckpt", checkpoint_seconds=0)
    some, every = tmp_path / "some" / dropped.split("/")[1], tmp_path / "all" / dropped.split("/")[1]
    assert (tmp_path / "some" / kept.split("/")[1] / run_folder.WEIGHTS).is_file()
    assert not (some / run_folder.WEIGHTS).exists()
    record = run_folder.read(some, cfg.runs[dropped])
    model = models.build(cfg.runs[dropped].model, 23)
    model.load_weights(every / run_folder.WEIGHTS)
    assert record[run_folder.WEIGHTS_DIGEST] == run_folder.weights_digest([np.asarray(v) for v in model.trainable_variables])
    assert record[run_folder.WEIGHTS_DIGEST] != run_folder.weights_digest([np.asarray(v) * 0 for v in model.trainable_variables])
    assert (some / "history.csv").read_bytes() == (every / "history.csv").read_bytes()
    assert set(run_folder.fingerprints(some, record)) == {"history.csv", "run.json"}
    assert set(run_folder.fingerprints(every, run_folder.read(every, cfg.runs[dropped]))) == set(OUTPUTS)
    with pytest.raises(config.ConfigError, match="holds no weights .* add the member to keep_weights"):
        embeddings.load_output_rows(some, cfg.runs[dropped])


def test_two_processes_give_byte_identical_outputs(tmp_path):
    outputs = []
    for name in ("first", "second"):
        root = _prepare(tmp_path / name)
        result = repro("train", "tiny", cwd=root, env={k: v for k, v in os.environ.items()
                                                      if k != "TF_CPP_MIN_LOG_LEVEL"})
        # TensorFlow's start-up notices (oneDNN, CPU features, absl) would be the loudest lines of every stage.
        assert not [line for line in result.stderr.splitlines() if any(
            word in line for word in ("oneDNN", "cpu_feature_guard", "absl", "rebuild TensorFlow"))], result.stderr
        outputs.append({f: (root / "runs/tiny" / f).read_bytes() for f in OUTPUTS})
    assert outputs[0] == outputs[1]
    history = pd.read_csv(tmp_path / "first/runs/tiny/history.csv")
    assert list(history.columns) == history_csv.COLUMNS
    assert history["update"].iloc[-1] == 300 and history["train_accuracy"].iloc[-1] > history["train_accuracy"].iloc[0]


def test_different_seed_gives_a_different_run(tmp_path):
    first = _prepare(tmp_path / "a")
    second = _prepare(tmp_path / "b", seed=1)
    for root in (first, second):
        repro("train", "tiny", cwd=root)
    assert (first / "runs/tiny/history.csv").read_bytes() != (second / "runs/tiny/history.csv").read_bytes()


@pytest.mark.slow
def test_killed_and_resumed_run_matches_an_uninterrupted_one(tmp_path):
    long = dict(updates=20_000, log_points=60)
    whole = _prepare(tmp_path / "whole", **long)
    repro("train", "tiny", cwd=whole)

    broken = _prepare(tmp_path / "broken", **long)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    process = subprocess.Popen([sys.executable, "-m", "repro", "train", "tiny"], cwd=broken, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    checkpoint = broken / "checkpoints/tiny/0.npz"
    deadline = time.monotonic() + 120
    while not checkpoint.exists() and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.05)
    time.sleep(0.3)  # let it get further, mid-way between checkpoints
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert checkpoint.exists(), "the run should have checkpointed before it was killed"
    assert not (broken / "runs/tiny").exists(), "a killed run must leave no finished-looking output"

    resumed = repro("train", "tiny", cwd=broken)
    assert "resuming from update" in resumed.stderr
    for name in OUTPUTS:
        assert (broken / "runs/tiny" / name).read_bytes() == (whole / "runs/tiny" / name).read_bytes(), name
    assert not checkpoint.exists()


def _checkpoint_of(root, **overrides):
    """A checkpoint of the tiny run's initial state, made as `checkpoints.identity` would, with `overrides`;
    returns its path and the identity a process here wants."""
    from repro import checkpoints

    run = config.parse(tiny_params()).run("tiny")
    trainer = train.GroupTrainer([run], [datasets.load(root / "data/add_23", run.dataset)])
    shard = trainer.shards[0]
    content = [*(np.asarray(t) for t in shard.table), datasets.load(root / "data/add_23", run.dataset).train]
    wanted = checkpoints.identity(train.group_fingerprint([run], "fp32"), checkpoints.data_digest(content), "fp32")
    made_as = json.loads(json.dumps(wanted))
    for key, value in overrides.items():  # a dict changes only the entries it names
        made_as[key] = {**made_as[key], **value} if isinstance(value, dict) else value
    path = root / "checkpoints/tiny/0.npz"
    checkpoints.save(path, made_as, 0, [], np.zeros((1, 1, 6)), trainer.state_arrays())
    return path, wanted


@pytest.mark.parametrize("made_with, reason", [
    ({"runs": "0123456789abcdef"}, "other parameters"),
    ({"code": {"repro/train.py": "0" * 16}}, r"other training code \(repro/train.py changed\)"),
    ({"libraries": {"keras": "2.0.0"}}, "other library versions: .*keras 2.0.0"),
    ({"data": "0" * 16}, "other data"),
    ({"backend": "jax"}, "backend jax"),
])
def test_a_checkpoint_made_otherwise_is_refused_with_its_reason(tmp_path, made_with, reason):
    from repro import checkpoints

    root = _prepare(tmp_path / "run")
    path, wanted = _checkpoint_of(root, **made_with)
    said = []
    assert checkpoints.load(path, wanted, said.append) is None
    assert len(said) == 1 and re.search(f"was made with {reason}.*not resumed: training from the start", said[0])
    assert checkpoints.load(path, json.loads(json.dumps(wanted)), said.append) is None and path.is_file()
    path, wanted = _checkpoint_of(root)
    assert checkpoints.load(path, wanted, said.append) is not None  # made here: resumed


def test_a_checkpoint_of_other_code_never_blocks_a_rerun(tmp_path):
    root = _prepare(tmp_path / "run")
    _checkpoint_of(root, code={"repro/models.py": "0" * 16})
    result = repro("train", "tiny", cwd=root)
    assert "other training code (repro/models.py changed)" in result.stderr and "resuming from" not in result.stderr
    assert (root / "runs/tiny/history.csv").is_file() and not (root / "checkpoints/tiny").exists()


@pytest.mark.parametrize("damage", ["other code", "damaged"])
def test_must_resume_refuses_a_state_it_cannot_continue_and_leaves_it_as_it_is(tmp_path, damage):
    """paper/campaign.sh trains with --must-resume: a state made by other code (or damaged) is an error that names
    `repro adopt`, and the file stays byte for byte (issue 33: the campaign once packed a fresh start over it)."""
    root = _prepare(tmp_path / "run")
    path, _ = _checkpoint_of(root, code={"repro/models.py": "0" * 16})
    if damage == "damaged":
        path.write_bytes(b"x" * 999)
    before = path.read_bytes()
    result = repro("train", "tiny", "--must-resume", cwd=root, check=False)
    assert result.returncode == 1 and "not resumed, since it " in result.stderr and "repro adopt" in result.stderr
    assert path.read_bytes() == before and not (root / "runs/tiny").exists()


def test_a_checkpoint_of_an_older_format_is_refused(tmp_path):
    from repro import checkpoints

    path = tmp_path / "0.npz"
    np.savez(path, fingerprint=np.array("0123456789abcdef"), history=np.zeros((1, 1, 6)), state_0=np.zeros(3))
    said = []
    assert checkpoints.load(path, {}, said.append) is None and "older version of repro" in said[0]


@pytest.mark.parametrize("damage", ["empty", "truncated", "garbage"])
def test_a_damaged_checkpoint_is_reported_deleted_and_never_blocks_a_rerun(tmp_path, damage):
    root = _prepare(tmp_path / "run")
    checkpoint, _ = _checkpoint_of(root)
    data = checkpoint.read_bytes()
    checkpoint.write_bytes({"empty": b"", "truncated": data[: len(data) // 2], "garbage": b"x" * 999}[damage])
    result = repro("train", "tiny", cwd=root)
    assert "damaged" in result.stderr and "training from the start" in result.stderr
    assert (root / "runs/tiny/history.csv").is_file() and not checkpoint.exists()


@pytest.mark.slow
def test_the_mlp_really_groks(tmp_path):
    """The shipped MLP run (x + y mod 97, 50% data): training fits long before validation generalizes."""
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    cfg = config.parse(raw)
    run = cfg.run("mlp_add")
    dataset = datasets.make(run.dataset)
    histories = runner.train_groups(run.name, [(run.name, [run], [dataset])], tmp_path / "run", tmp_path / "ckpt").histories[0]
    history = pd.DataFrame(histories[0], columns=history_csv.COLUMNS)
    metrics = analysis.summarize(history)
    assert metrics["final"]["train_accuracy"] >= 0.99
    assert isinstance(metrics["updates_to_99_val"], int), "validation accuracy never reached 99%"
    # Grokking: validation reaches 99% several times later than training did...
    assert metrics["updates_to_99_val"] >= 3 * metrics["updates_to_99_train"]
    # ...and was still far from generalizing when training had already fit.
    at_fit = history.loc[history["update"] == metrics["updates_to_99_train"], "val_accuracy"].item()
    assert at_fit < 0.5


class _Terminal(io.StringIO):
    def isatty(self):
        return True


@pytest.mark.parametrize("stream, ci, shown", [(_Terminal, None, True), (_Terminal, "true", False),
                                               (io.StringIO, None, False)])
def test_progress_shows_on_a_terminal_only_outside_ci(monkeypatch, stream, ci, shown):
    err = stream()
    monkeypatch.setattr(sys, "stderr", err)
    monkeypatch.delenv("CI", raising=False)
    if ci:
        monkeypatch.setenv("CI", ci)
    progress = runner.Progress("tiny", 1000, 1)
    progress.update(10, 0.1, 0.0)  # the first report starts the clock: compilation is not counted
    progress.update(1000, 1.0, 0.5)
    text = err.getvalue()
    assert ("1,000/1,000 updates (100%)" in text and "updates/s" in text and "left" in text) == shown
    assert shown or text == ""
