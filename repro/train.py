"""Training: a compiled loop of many updates per call, log-spaced evaluation, resumable.

`Trainer.train_updates` runs updates in XLA-compiled `tf.while_loop`s of up
to `EPOCHS_PER_CALL` epochs each: no Python runs per update. Minibatches come
from a fresh shuffle of the training set each epoch, keyed by (seed, epoch)
alone, so the batch of update t is the same however the run was split into
calls, or interrupted and resumed.

Outputs of a run (written together, atomically, when it finishes):
    history.csv        update, losses, accuracies, global weight norm
    model.weights.h5   the final weights (Keras format)
    run.json           parameters, seeds, dataset counts and library versions
"""

from __future__ import annotations

import csv
import io
import os
import platform
import sys
import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from repro import determinism, files, models, provenance
from repro.config import RunConfig
from repro.datasets import Dataset
from repro.evaluate import HISTORY_COLUMNS


# Shuffles are drawn for this many epochs at a time, outside the update loop: XLA's
# CPU sort costs ~1 ms per shuffle of 4,656 examples, which was ~20% of an MLP update.
EPOCHS_PER_CALL = 16


def log_schedule(updates: int, points: int) -> list[int]:
    """Updates after which to evaluate: 0, then `points` log-spaced steps up to `updates`."""
    spaced = np.unique(np.round(np.geomspace(1, updates, num=points)).astype(int))
    return [0, *spaced.tolist()]


def stable_argsort(keys: np.ndarray) -> np.ndarray:
    """`np.argsort(keys, axis=-1, kind="stable")` for float32 keys ≥ 0, as int32, ~8x quicker.

    Non-negative floats order as their bit patterns do. With the index in the
    low 32 bits every packed key is distinct, so NumPy's fast unstable sort
    gives the stable order.
    """
    packed = (keys.view(np.int32).astype(np.int64) << 32) | np.arange(keys.shape[-1])
    return (np.sort(packed, axis=-1) & 0xFFFFFFFF).astype(np.int32)


def batch_size(run: RunConfig, num_train: int) -> int:
    """The paper's minibatch, min(batch_size, half the training set), or the whole set."""
    if run.training.full_batch:
        return num_train
    return max(1, min(run.training.batch_size, num_train // 2))


class LinearWarmup(keras.optimizers.schedules.LearningRateSchedule):
    """lr · min(1, update / warmup): as the official code, the first update has lr 0."""

    def __init__(self, learning_rate: float, warmup_updates: int):
        self.learning_rate, self.warmup_updates = learning_rate, warmup_updates

    def __call__(self, step):
        if self.warmup_updates == 0:
            return keras.ops.convert_to_tensor(self.learning_rate)
        fraction = keras.ops.cast(step, "float32") / self.warmup_updates
        return self.learning_rate * keras.ops.minimum(1.0, fraction)

    def get_config(self):
        return {"learning_rate": self.learning_rate, "warmup_updates": self.warmup_updates}


def _cross_entropy(labels, logits):
    return tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits))


class Trainer:
    """A model, its optimiser and the compiled functions that train and evaluate it."""

    def __init__(self, run: RunConfig, dataset: Dataset):
        determinism.configure(run.training.seed)
        kind = run.model.kind
        inputs = models.encode(kind, dataset.a, dataset.b, dataset.num_elements)
        self.x_train = tf.constant(inputs[dataset.train])
        self.y_train = tf.constant(dataset.c[dataset.train])
        self.x_val = tf.constant(inputs[~dataset.train])
        self.y_val = tf.constant(dataset.c[~dataset.train])
        self.num_train = int(dataset.train.sum())
        self.batch_size = batch_size(run, self.num_train)
        self.batches_per_epoch = self.num_train // self.batch_size
        self.seed = run.training.seed
        self.training = t = run.training

        self.model = models.build(run.model, dataset.num_elements, dropout=t.dropout)
        # Keras' AdamW decays every trainable variable by lr·wd·w, as the official code does.
        # Decay towards the initial weights is applied in `_update` instead.
        self.optimizer = keras.optimizers.AdamW(
            learning_rate=LinearWarmup(t.learning_rate, t.warmup_updates),
            weight_decay=t.weight_decay if t.decay_towards == "zero" else 0.0,
            beta_1=t.beta_1, beta_2=t.beta_2, epsilon=t.epsilon,
        )
        self.optimizer.build(self.model.trainable_variables)
        self.initial_weights = []
        if t.decay_towards == "init":
            self.initial_weights = [
                tf.Variable(v, trainable=False, name=f"initial_{i}")
                for i, v in enumerate(self.model.trainable_variables)
            ]
        self.train_chunk = tf.function(self._train_chunk, jit_compile=determinism.JIT_COMPILE)
        self.evaluate = tf.function(self._evaluate, jit_compile=determinism.JIT_COMPILE)
        self._shuffle_keys = tf.function(self._keys, jit_compile=determinism.JIT_COMPILE)
        self._shuffled = (None, None)  # (block, its orders): each block is drawn once

    def _keys(self, first_epoch):
        """One uniform key per training example for each epoch of a block."""
        return tf.stack([
            tf.random.stateless_uniform([self.num_train], seed=tf.stack([self.seed, first_epoch + i]))
            for i in range(EPOCHS_PER_CALL)
        ])

    def shuffles(self, block: int) -> np.ndarray:
        """The training-set order of each epoch of `block` (epochs block·E … block·E + E - 1)."""
        if self._shuffled[0] != block:
            keys = self._shuffle_keys(tf.constant(block * EPOCHS_PER_CALL, tf.int32)).numpy()
            self._shuffled = (block, stable_argsort(keys))
        return self._shuffled[1]

    def train_updates(self, start: int, stop: int) -> None:
        """Runs updates start … stop - 1, one compiled call per block of epochs."""
        per_block = self.batches_per_epoch * EPOCHS_PER_CALL
        while start < stop:
            block = start // per_block
            end = min(stop, (block + 1) * per_block)
            self.train_chunk(tf.constant(start, tf.int32), tf.constant(end - start, tf.int32), self.shuffles(block))
            start = end

    def _noise(self, step, purpose: int, std: float):
        """Gaussian noise for every weight, keyed by (seed, update, purpose, weight index)."""
        key = tf.stack([tf.constant(self.seed, tf.int32), step])
        key = tf.random.experimental.stateless_fold_in(key, purpose)
        return [
            std * tf.random.stateless_normal(v.shape, tf.random.experimental.stateless_fold_in(key, i), alg=models.RANDOM_ALGORITHM)
            for i, v in enumerate(self.model.trainable_variables)
        ]

    def _update(self, step, batch):
        """One optimiser update on the examples `batch`, with the configured interventions."""
        variables, t = self.model.trainable_variables, self.training
        if t.weight_noise:
            # The gradient is taken at noisy weights and applied to the clean ones.
            clean = [tf.identity(v) for v in variables]
            for v, noise in zip(variables, self._noise(step, 1, t.weight_noise)):
                v.assign_add(noise)
        with tf.GradientTape() as tape:
            logits = self.model(tf.gather(self.x_train, batch), training=True)
            loss = _cross_entropy(tf.gather(self.y_train, batch), logits)
        # The embedding-style gathers give sparse gradients; AdamW's moments are dense
        # anyway, and one dense conversion here is cheaper than Keras' sparse path.
        gradients = [tf.convert_to_tensor(g) for g in tape.gradient(loss, variables)]
        if t.weight_noise:
            for v, value in zip(variables, clean):
                v.assign(value)
        if self.initial_weights:
            # As AdamW decays towards zero, before the Adam step, at the scheduled rate.
            rate = self.optimizer.learning_rate * t.weight_decay
            for v, v0 in zip(variables, self.initial_weights):
                v.assign(v - (v - v0) * rate)
        self.optimizer.apply(gradients, variables)
        if t.update_noise:
            for v, noise in zip(variables, self._noise(step, 2, t.update_noise)):
                v.assign_add(noise)

    def _train_chunk(self, start, count, orders):
        """Runs updates start … start + count - 1, all in the block of epochs that `orders` shuffles."""
        size, per_epoch = self.batch_size, self.batches_per_epoch

        def update(step):
            order = orders[(step // per_epoch) % EPOCHS_PER_CALL]
            self._update(step, tf.slice(order, [(step % per_epoch) * size], [size]))
            return (step + 1,)

        tf.while_loop(lambda step: step < start + count, update, (start,))

    def _evaluate(self):
        """[train loss, train accuracy, val loss, val accuracy, global weight norm]."""
        values = []
        for x, y in ((self.x_train, self.y_train), (self.x_val, self.y_val)):
            logits = self.model(x, training=False)
            correct = tf.equal(tf.argmax(logits, axis=-1, output_type=tf.int32), y)
            values += [_cross_entropy(y, logits), tf.reduce_mean(tf.cast(correct, tf.float32))]
        squares = [tf.reduce_sum(tf.square(w)) for w in self.model.trainable_variables]
        values.append(tf.sqrt(tf.add_n(squares)))
        return tf.stack(values)

    # --- checkpoints ---------------------------------------------------------

    def _stateful(self) -> list:
        # model.variables includes dropout's random-seed state, which a resume must restore.
        return [*self.model.variables, *self.optimizer.variables, *self.initial_weights]

    def state(self) -> list[np.ndarray]:
        return [np.asarray(v) for v in self._stateful()]

    def restore(self, arrays: list[np.ndarray]) -> None:
        targets = self._stateful()
        if len(arrays) != len(targets):
            raise ValueError("checkpoint does not match the model; delete it to start afresh")
        for variable, value in zip(targets, arrays):
            variable.assign(value)


def _save_checkpoint(path: Path, fingerprint: str, history: list[list[float]], state: list[np.ndarray]) -> None:
    arrays = {f"state_{i}": a for i, a in enumerate(state)}
    with files.atomic_path(path, suffix=".npz") as tmp:
        np.savez(tmp, fingerprint=np.array(fingerprint), history=np.array(history, dtype=np.float64), **arrays)


def _load_checkpoint(path: Path, fingerprint: str):
    """(history, state) from a checkpoint of this very configuration, else None."""
    if not path.is_file():
        return None
    try:
        with np.load(path) as saved:
            if str(saved["fingerprint"]) != fingerprint:
                return None
            state = [saved[f"state_{i}"] for i in range(len(saved.files) - 2)]
            return saved["history"].tolist(), state
    except (OSError, ValueError, KeyError):
        return None  # unreadable: start afresh rather than trust it


def _history_csv(history: list[list[float]]) -> str:
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(HISTORY_COLUMNS)
    for row in history:
        writer.writerow([int(row[0]), *(f"{v:.8g}" for v in row[1:])])
    return text.getvalue()


def record(run: RunConfig, dataset: Dataset, trainer: Trainer) -> dict:
    """run.json: what determines the results; identical wherever they are reproduced."""
    return {
        "run": run.to_dict(),
        "fingerprint": run.fingerprint(),
        "seeds": {"training": run.training.seed, "split": run.dataset.seed},
        "batch_size": trainer.batch_size,
        "dataset": {
            **{k: dataset.manifest[k] for k in
               ("operation", "formula", "modulus", "train_fraction", "seed", "equations", "train", "validation")},
            "elements": dataset.num_elements,
        },
        "parameters": {
            "trainable": int(sum(np.prod(w.shape) for w in trainer.model.trainable_weights)),
            "non_embedding": models.non_embedding_parameters(trainer.model),
        },
        "determinism": determinism.settings(),
        "versions": {
            "python": platform.python_version(),
            "numpy": np.__version__,
            "tensorflow": tf.__version__,
            "keras": keras.__version__,
        },
        "platform": {"system": platform.system(), "machine": platform.machine()},
    }


def _report(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


class Progress:
    """One self-rewriting status line on a terminal: updates done, updates/s, time left.

    Silent when stderr is not a terminal (logs, pipes) or under CI, where a
    line every second would only bury the output that matters.
    """

    def __init__(self, name: str, total: int, first: int):
        self.enabled = sys.stderr.isatty() and not os.environ.get("CI")
        self.name, self.total, self.first = name, total, first
        self.started = self.shown = time.monotonic()

    def update(self, done: int, train_accuracy: float, val_accuracy: float) -> None:
        now = time.monotonic()
        if not self.enabled or (now - self.shown < 0.5 and done < self.total):
            return
        self.shown = now
        rate = (done - self.first) / max(now - self.started, 1e-9)
        left = (self.total - done) / max(rate, 1e-9)
        line = (f"{self.name}: {done:,}/{self.total:,} updates ({done / self.total:.0%}), {rate:,.1f} updates/s, "
                f"{int(left // 60)}m{int(left % 60):02d}s left, train acc {train_accuracy:.3f}, val acc {val_accuracy:.3f}")
        sys.stderr.write(f"\r\x1b[K{line}" + ("\n" if done >= self.total else ""))
        sys.stderr.flush()


def train(run: RunConfig, dataset: Dataset, out_dir: Path, checkpoint: Path) -> list[list[float]]:
    """Trains `run` on `dataset`, resuming from `checkpoint` if it holds this run's state."""
    trainer = Trainer(run, dataset)
    fingerprint = run.fingerprint()
    schedule = log_schedule(run.training.updates, run.training.log_points)

    resumed = _load_checkpoint(checkpoint, fingerprint)
    if resumed is None:
        history = [[0.0, *trainer.evaluate().numpy().tolist()]]
    else:
        history, state = resumed
        trainer.restore(state)
        _report(f"{run.name}: resuming from update {int(history[-1][0])} ({checkpoint})")

    last_checkpoint = time.monotonic()
    first_update = int(history[-1][0])
    progress = Progress(run.name, run.training.updates, first_update)
    for previous, target in zip(schedule, schedule[1:]):
        if target <= first_update:
            continue
        trainer.train_updates(previous, target)
        history.append([float(target), *trainer.evaluate().numpy().tolist()])
        now = time.monotonic()
        if now - last_checkpoint >= run.training.checkpoint_seconds and target < run.training.updates:
            _save_checkpoint(checkpoint, fingerprint, history, trainer.state())
            last_checkpoint = now
        progress.update(target, history[-1][2], history[-1][4])

    with files.atomic_directory(out_dir) as tmp:
        (tmp / "history.csv").write_text(_history_csv(history), encoding="utf-8")
        trainer.model.save_weights(tmp / "model.weights.h5")
        files.write_json(tmp / "run.json", record(run, dataset, trainer))
        files.write_json(tmp / "provenance.json", {**provenance.environment(), "parameters_hash": run.fingerprint()})
    checkpoint.unlink(missing_ok=True)
    return history
