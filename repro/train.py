"""Training: a group of runs in one compiled program, log-spaced evaluation, resumable.

A group is runs that share a model, an operation table, a budget and a log
grid (config.GroupConfig). Their weights and Adam moments are stacked along
a leading axis and updated together: `backend.map_runs` applies one run's
update to every run (jax.vmap on JAX, written out per run on TensorFlow),
inside a compiled loop of up to `CHUNK_UPDATES` updates; no Python runs per
update. Every run keeps its own meaning: its seed, split, minibatch order,
learning rate, warm-up and interventions are per-run values in the program.

Minibatches are drawn on the host: every epoch each run's training rows are
permuted by NumPy, keyed by (seed, epoch) alone, so the batch of update t is
the same however the training was split into calls, interrupted or resumed.
Runs with smaller batches (full-batch runs of a smaller training set) are
padded to the group's widest batch with zero weight.

Outputs of each run (written together with the whole group, atomically):
    history.csv        update, losses, accuracies, global weight norm
    model.weights.h5   the final weights (Keras format)
    run.json           parameters, seeds, dataset counts, group, backend and versions
    provenance.json    the machine and environment that made them
"""

from __future__ import annotations

import hashlib
import os
import platform
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import keras
import numpy as np
from keras import ops

from repro import backend, determinism, files, history_csv, models, provenance, run_folder
from repro.config import RunConfig
from repro.datasets import Dataset

# Updates per compiled call. Fixed, so that one compilation serves every call.
CHUNK_UPDATES = 256
CPU_THREADS = 2  # shards of a group trained at once on a CPU (the laptop's two cores)
_SHUFFLE, _WEIGHT_NOISE, _UPDATE_NOISE, _DROPOUT = 1, 2, 3, 4  # purposes that key random draws
_HYPER = ("learning_rate", "weight_decay", "beta_1", "beta_2", "epsilon", "warmup_updates",
          "update_noise", "weight_noise", "dropout")


def log_schedule(updates: int, points: int) -> list[int]:
    """Updates after which to evaluate: 0, then `points` log-spaced steps up to `updates`."""
    spaced = np.unique(np.round(np.geomspace(1, updates, num=points)).astype(int))
    return [0, *spaced.tolist()]


def batch_size(run: RunConfig, num_train: int) -> int:
    """The paper's minibatch, min(batch_size, half the training set), or the whole set."""
    if run.training.full_batch:
        return num_train
    return max(1, min(run.training.batch_size, num_train // 2))


class Batches:
    """Each run's minibatches: every epoch a fresh permutation of its training rows, keyed by (seed, epoch)."""

    def __init__(self, rows: list[np.ndarray], sizes: list[int], seeds: list[int]):
        self.rows, self.sizes, self.seeds = rows, sizes, seeds
        self.per_epoch = [len(r) // s for r, s in zip(rows, sizes)]
        self._orders: list[dict[int, np.ndarray]] = [{} for _ in rows]

    def order(self, run: int, epoch: int) -> np.ndarray:
        """The epoch's batches of `run`, as (batches per epoch, batch size) row indices."""
        cache = self._orders[run]
        if epoch not in cache:
            if len(cache) > 4:
                cache.clear()
            rng = np.random.default_rng([_SHUFFLE, self.seeds[run], epoch])
            size, count = self.sizes[run], self.per_epoch[run]
            cache[epoch] = rng.permutation(self.rows[run])[: size * count].reshape(count, size)
        return cache[epoch]

    def take(self, start: int, count: int, width: int, length: int) -> np.ndarray:
        """Row indices of updates start … start + count - 1: (length, runs, width), zero-padded."""
        out = np.zeros((length, len(self.rows), width), dtype=np.int32)
        for run, per_epoch in enumerate(self.per_epoch):
            first, last = start // per_epoch, (start + count - 1) // per_epoch
            batches = np.concatenate([self.order(run, e) for e in range(first, last + 1)])
            offset = start - first * per_epoch
            out[:count, run, : self.sizes[run]] = batches[offset: offset + count]
        return out


def _cross_entropy(labels, logits):
    """Per-example cross-entropy of integer labels under softmax(logits)."""
    # A one-hot product rather than a gather: the gather's gradient is a scatter, slow under XLA on a CPU.
    picked = ops.sum(logits * ops.one_hot(labels, ops.shape(logits)[-1], dtype=logits.dtype), axis=-1)
    return ops.logsumexp(logits, axis=-1) - picked


def adamw(params, grads, moments, velocities, targets, step, h):
    """One AdamW update of one run, written out as Keras' AdamW computes it (tested against it).

    Decoupled decay first, `w ← w − (w − target)·wd·lr` (target 0, or the
    initial weights for "decay towards init"), then Adam with bias correction;
    `lr` is the warmed-up rate of update `step`, as Keras' schedule gives it.
    """
    warm = ops.where(h["warmup_updates"] > 0,
                     ops.minimum(1.0, ops.cast(step, "float32") / ops.maximum(h["warmup_updates"], 1.0)), 1.0)
    lr = h["learning_rate"] * warm
    local_step = ops.cast(step + 1, "float32")
    beta_1, beta_2 = h["beta_1"], h["beta_2"]
    alpha = lr * ops.sqrt(1 - ops.power(beta_2, local_step)) / (1 - ops.power(beta_1, local_step))
    new = ([], [], [])
    for i, (w, g, m, v) in enumerate(zip(params, grads, moments, velocities)):
        pulled = w if targets is None else w - targets[i] * h["decay_to_init"]
        w = w - pulled * h["weight_decay"] * lr
        m = m + (g - m) * (1 - beta_1)
        v = v + (ops.square(g) - v) * (1 - beta_2)
        w = w - (m * alpha) / (ops.sqrt(v) + h["epsilon"])
        for store, value in zip(new, (w, m, v)):
            store.append(value)
    return new


def _noise(params, key, purpose: int, std):
    """Gaussian noise of std `std` for every weight, keyed by (seed, update, purpose, weight index)."""
    key = backend.fold_in(key, purpose)
    return [std * backend.normal(ops.shape(w), backend.fold_in(key, i)) for i, w in enumerate(params)]


class Shard:
    """Some runs of a group, stacked: their weights, Adam moments, hyperparameters, splits and batches."""

    def __init__(self, positions: list[int], runs: list[RunConfig], train: np.ndarray, width: int,
                 sizes: list[int], initial: list[list[np.ndarray]], decay_to_init: bool):
        self.positions = positions
        t = [runs[p].training for p in positions]
        hyper = {name: np.array([getattr(x, name) for x in t], dtype="float32") for name in _HYPER}
        hyper["decay_to_init"] = np.array([x.decay_towards == "init" for x in t], dtype="float32")
        hyper["seed"] = np.array([x.seed for x in t], dtype="int32")
        own = np.array([sizes[p] for p in positions])
        hyper["batch_weights"] = (np.arange(width)[None] < own[:, None]).astype("float32")
        self.hyper = {k: ops.convert_to_tensor(v) for k, v in hyper.items()}
        self.train_mask = ops.convert_to_tensor(train[positions].astype("float32"))
        self.batches = Batches([np.flatnonzero(train[p]) for p in positions], [sizes[p] for p in positions],
                               [x.seed for x in t])
        params = [np.stack(per_run) for per_run in zip(*(initial[p] for p in positions))]
        state = {
            "params": params,
            "moments": [np.zeros_like(p) for p in params],
            "velocities": [np.zeros_like(p) for p in params],
            "targets": [p.copy() for p in params] if decay_to_init else [],
        }
        self.state = keras.tree.map_structure(ops.convert_to_tensor, state)


class GroupTrainer:
    """A group of runs and the compiled functions that train and evaluate it.

    On a CPU the runs are split into `CPU_THREADS` shards, each its own stack,
    trained by as many threads at once: XLA runs the MLP's small matrix
    products on one core, and stacking more runs into one program gained
    little there (MLP, 12 runs: 1.1x one run's speed), while two threads
    nearly doubled it. On a GPU the whole group is one shard, one program.
    The shards are a fixed function of the group, so the bytes do not depend
    on the machine's core count.
    """

    def __init__(self, runs: list[RunConfig], datasets: list[Dataset], precision: str = "fp32"):
        determinism.configure(precision)
        self.runs = runs
        first, kind = datasets[0], runs[0].model.kind
        self.x = ops.convert_to_tensor(models.encode(kind, first.a, first.b, first.num_elements))
        self.y = ops.convert_to_tensor(first.c)
        train = np.stack([d.train for d in datasets])
        self.sizes = [batch_size(run, int(n)) for run, n in zip(runs, train.sum(axis=1))]
        self.width = max(self.sizes)
        t = [run.training for run in runs]
        # Noise and dropout cost work even at zero; they are in the program only if a run uses them.
        self.uses = {"weight_noise": any(x.weight_noise for x in t), "update_noise": any(x.update_noise for x in t),
                     "dropout": any(x.dropout for x in t), "decay_to_init": any(x.decay_towards == "init" for x in t)}

        self.model = self._build(runs[0], first.num_elements)
        initial = []
        for run in runs:
            determinism.seed(run.training.seed)  # each run's own initial weights
            initial.append([np.asarray(v) for v in self._build(run, first.num_elements).trainable_variables])
        count = 1 if backend.accelerator() == "gpu" else min(CPU_THREADS, len(runs))
        self.shards = [Shard(list(positions), runs, train, self.width, self.sizes, initial, self.uses["decay_to_init"])
                       for positions in np.array_split(np.arange(len(runs)), count)]
        self._pool = ThreadPoolExecutor(len(self.shards)) if len(self.shards) > 1 else None
        self._compiled: set[str] = set()
        self._train_chunk = backend.compile(self._train_chunk_function)
        self._evaluate = backend.compile(self._evaluate_function)

    def _build(self, run: RunConfig, num_elements: int) -> keras.Model:
        return models.build(run.model, num_elements, dropout=self.uses["dropout"])

    # --- the compiled functions ----------------------------------------------

    def _logits(self, params, x, training: bool, rate=None, key=None):
        """The model as a function of one run's weights; dropout layers get the run's rate and a key each."""
        extra = []
        for i, variable in enumerate(self.model.non_trainable_variables):
            if not training:
                extra.append(ops.zeros(variable.shape, variable.dtype))
            elif variable.name == "rate":
                extra.append(rate)
            else:
                extra.append(backend.fold_in(key, i))
        logits, _ = self.model.stateless_call(params, extra, x, training=training)
        return logits

    def _update(self, state, h, rows, step):
        """One update of one run on the training rows `rows`."""
        params = state["params"]
        key = ops.stack([h["seed"], ops.cast(step, "int32")])
        x, y, weights = ops.take(self.x, rows, axis=0), ops.take(self.y, rows, axis=0), h["batch_weights"]

        def loss(at):
            logits = self._logits(at, x, True, h["dropout"], backend.fold_in(key, _DROPOUT))
            return ops.sum(_cross_entropy(y, logits) * weights) / ops.sum(weights), None

        at = params
        if self.uses["weight_noise"]:  # the gradient is taken at noisy weights and applied to the clean ones
            at = [w + n for w, n in zip(params, _noise(params, key, _WEIGHT_NOISE, h["weight_noise"]))]
        _, grads = backend.value_and_grad(loss)(at)
        targets = state["targets"] if self.uses["decay_to_init"] else None
        params, moments, velocities = adamw(params, grads, state["moments"], state["velocities"], targets, step, h)
        if self.uses["update_noise"]:
            params = [w + n for w, n in zip(params, _noise(params, key, _UPDATE_NOISE, h["update_noise"]))]
        return {"params": params, "moments": moments, "velocities": velocities, "targets": state["targets"]}

    def _train_chunk_function(self, state, hyper, start, count, rows):
        def body(i, state):
            step = start + i
            return backend.map_runs(lambda s, h, r: self._update(s, h, r, step), state, hyper, rows[i])

        return backend.loop(count, body, state)

    def _evaluate_function(self, params, train_mask):
        """(runs, 5): train loss, train accuracy, validation loss, validation accuracy, weight norm."""

        def one(params, train):
            logits = self._logits(params, self.x, False)
            loss = _cross_entropy(self.y, logits)
            correct = ops.cast(ops.equal(ops.cast(ops.argmax(logits, axis=-1), "int32"), self.y), "float32")
            values = []
            for mask in (train, 1.0 - train):
                count = ops.sum(mask)
                values += [ops.sum(loss * mask) / count, ops.sum(correct * mask) / count]
            values.append(ops.sqrt(sum(ops.sum(ops.square(w)) for w in params)))
            return ops.stack(values)

        return backend.map_runs(one, params, train_mask)

    # --- driving them --------------------------------------------------------

    def _each_shard(self, work, function: str) -> list:
        """work(shard) for every shard, the shards at once; but the first call of each compiled function
        is made by one thread alone.

        That first call traces and compiles. A laptop pipeline once died of a segmentation fault 11 s
        into a group, when its two threads make these calls together; now the other threads wait a few
        seconds, once per group, and find the program compiled.
        """
        if self._pool is None:
            return [work(shard) for shard in self.shards]
        if function not in self._compiled:
            self._compiled.add(function)
            return [work(self.shards[0]), *self._pool.map(work, self.shards[1:])]
        return list(self._pool.map(work, self.shards))

    def train_updates(self, start: int, stop: int) -> None:
        """Runs updates start … stop - 1 of every run."""

        def work(shard: Shard) -> None:
            begin = start
            while begin < stop:
                count = min(CHUNK_UPDATES, stop - begin)
                rows = shard.batches.take(begin, count, self.width, CHUNK_UPDATES)
                shard.state = self._train_chunk(shard.state, shard.hyper, ops.convert_to_tensor(np.int32(begin)),
                                                ops.convert_to_tensor(np.int32(count)), ops.convert_to_tensor(rows))
                begin += count
            keras.tree.map_structure(ops.convert_to_numpy, shard.state["params"][:1])  # wait for the device

        self._each_shard(work, "train")

    def evaluate(self) -> np.ndarray:
        """(runs, 5), in the group's order."""
        found = self._each_shard(lambda s: ops.convert_to_numpy(self._evaluate(s.state["params"], s.train_mask)),
                                 "evaluate")
        return np.concatenate(found).astype(np.float64)

    def state_arrays(self) -> list[np.ndarray]:
        return [np.asarray(ops.convert_to_numpy(a)) for s in self.shards for a in keras.tree.flatten(s.state)]

    def restore(self, arrays: list[np.ndarray]) -> None:
        leaves = [leaf for s in self.shards for leaf in keras.tree.flatten(s.state)]
        if len(arrays) != len(leaves) or any(a.shape != tuple(b.shape) for a, b in zip(arrays, leaves)):
            raise ValueError("checkpoint does not match this group's model")
        for shard in self.shards:
            count = len(keras.tree.flatten(shard.state))
            shard.state = keras.tree.pack_sequence_as(shard.state, [ops.convert_to_tensor(a) for a in arrays[:count]])
            arrays = arrays[count:]

    def weights(self) -> list[list[np.ndarray]]:
        """Every run's trained weights, in the group's order; each shard's stack is copied to the host once."""
        found = {}
        for shard in self.shards:
            stacked = [ops.convert_to_numpy(p) for p in shard.state["params"]]
            for i, position in enumerate(shard.positions):
                found[position] = [w[i] for w in stacked]
        return [found[position] for position in range(len(self.runs))]

    def model_with(self, run: int, weights: list[np.ndarray]) -> keras.Model:
        """The template model holding `weights`, run `run`'s (dropout layers at the run's rate)."""
        for variable, value in zip(self.model.trainable_variables, weights):
            variable.assign(value)
        for variable in self.model.non_trainable_variables:
            if variable.name == "rate":
                variable.assign(self.runs[run].training.dropout)
        return self.model


# --- checkpoints --------------------------------------------------------------

def group_fingerprint(runs: list[RunConfig], precision: str) -> str:
    """What determines a group's training: its members, in order, the backend and the precision."""
    text = "|".join([backend.NAME, precision, *(f"{r.name}={r.fingerprint()}" for r in runs)])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def save_checkpoint(path: Path, fingerprint: str, history: np.ndarray, state: list[np.ndarray]) -> None:
    arrays = {f"state_{i}": a for i, a in enumerate(state)}
    with files.atomic_path(path, suffix=".npz") as tmp:
        np.savez(tmp, fingerprint=np.array(fingerprint), history=history, **arrays)


def load_checkpoint(path: Path, fingerprint: str):
    """(history, state) from a checkpoint of this very group, else None (a damaged one is reported and deleted)."""
    if not path.is_file():
        return None
    try:
        with np.load(path) as saved:
            if str(saved["fingerprint"]) != fingerprint:
                return None
            state = [saved[f"state_{i}"] for i in range(len(saved.files) - 2)]
            return saved["history"], state
    except Exception as error:  # a truncated or damaged file: never trust it, never let it block a rerun
        _report(f"{path} is damaged ({type(error).__name__}: {error}); deleted it, training from the start")
        path.unlink(missing_ok=True)
        return None


def record(run: RunConfig, dataset: Dataset, trainer: GroupTrainer, index: int) -> dict:
    """run.json: what determines the results; identical wherever they are reproduced on the same backend."""
    model = trainer.model
    return {
        "run": run.to_dict(),
        "fingerprint": run.fingerprint(),
        "seeds": {"training": run.training.seed, "split": run.dataset.seed},
        "batch_size": trainer.sizes[index],
        "group": {"name": run.group, "runs": len(trainer.runs), "position": index, "shards": len(trainer.shards)},
        "dataset": {
            **{k: dataset.manifest[k] for k in
               ("operation", "formula", "modulus", "train_fraction", "seed", "equations", "train", "validation")},
            "elements": dataset.num_elements,
        },
        "parameters": {
            "trainable": int(sum(np.prod(w.shape) for w in model.trainable_weights)),
            "non_embedding": models.non_embedding_parameters(model),
        },
        "determinism": determinism.settings(),
        "versions": {"python": platform.python_version(), "numpy": np.__version__, "keras": keras.__version__,
                     **backend.versions()},
        "platform": {"system": platform.system(), "machine": platform.machine()},
    }


def _report(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


class Progress:
    """One self-rewriting status line on a terminal: updates done, updates/s, time left.

    Silent when stderr is not a terminal (logs, pipes) or under CI, where a
    line every second would only bury the output that matters. The rate is
    measured from the first report on, so compilation does not inflate the
    time left.
    """

    def __init__(self, name: str, total: int, runs: int):
        self.enabled = sys.stderr.isatty() and not os.environ.get("CI")
        self.name, self.total, self.runs = name, total, runs
        self.started = self.shown = None
        self.first = 0

    def update(self, done: int, train_accuracy: float, val_accuracy: float) -> None:
        now = time.monotonic()
        if self.started is None:
            self.started, self.shown, self.first = now, now, done
            return
        if not self.enabled or (now - self.shown < 0.5 and done < self.total):
            return
        self.shown = now
        rate = (done - self.first) / max(now - self.started, 1e-9)
        left = (self.total - done) / max(rate, 1e-9)
        line = (f"{self.name}: {done:,}/{self.total:,} updates ({done / self.total:.0%}) x {self.runs} run(s), "
                f"{rate * self.runs:,.1f} updates/s in all, {int(left // 60)}m{int(left % 60):02d}s left, "
                f"mean train acc {train_accuracy:.3f}, mean val acc {val_accuracy:.3f}")
        sys.stderr.write(f"\r\x1b[K{line}" + ("\n" if done >= self.total else ""))
        sys.stderr.flush()


def train_group(name: str, runs: list[RunConfig], datasets: list[Dataset], out_dir: Path, checkpoint: Path,
                precision: str = "fp32", checkpoint_seconds: float = 60.0) -> np.ndarray:
    """Trains the group `runs` together, resuming from `checkpoint` if it holds this group's state.

    Writes each run's folder under `out_dir` (at its path relative to the group's), all at once.
    Returns the histories, (runs, log points, 6).
    """
    trainer = GroupTrainer(runs, datasets, precision)
    fingerprint = group_fingerprint(runs, precision)
    schedule = log_schedule(runs[0].training.updates, runs[0].training.log_points)

    resumed = load_checkpoint(checkpoint, fingerprint)
    if resumed is None:
        history = [np.column_stack([np.zeros(len(runs)), trainer.evaluate()])]
    else:
        saved, state = resumed
        trainer.restore(state)
        history = list(np.swapaxes(saved, 0, 1))
        _report(f"{name}: resuming from update {int(history[-1][0, 0])} ({checkpoint})")

    last_checkpoint = time.monotonic()
    first_update = int(history[-1][0, 0])
    progress = Progress(name, runs[0].training.updates, len(runs))
    for previous, target in zip(schedule, schedule[1:]):
        if target <= first_update:
            continue
        trainer.train_updates(previous, target)
        history.append(np.column_stack([np.full(len(runs), float(target)), trainer.evaluate()]))
        now = time.monotonic()
        if now - last_checkpoint >= checkpoint_seconds and target < schedule[-1]:
            save_checkpoint(checkpoint, fingerprint, np.stack(history, axis=1), trainer.state_arrays())
            last_checkpoint = now
        progress.update(target, float(history[-1][:, 2].mean()), float(history[-1][:, 4].mean()))

    histories = np.stack(history, axis=1)
    environment = provenance.environment()
    weights = trainer.weights()
    with files.atomic_directory(out_dir) as tmp:
        for index, (run, dataset) in enumerate(zip(runs, datasets)):
            run_dir = tmp / Path(run.directory).relative_to(runs[0].group)
            run_dir.mkdir(parents=True, exist_ok=True)
            (run_dir / history_csv.FILE).write_text(history_csv.text(histories[index]), encoding="utf-8")
            trainer.model_with(index, weights[index]).save_weights(run_dir / "model.weights.h5")
            run_folder.write(run_dir, record(run, dataset, trainer, index),
                             {**environment, "parameters_hash": run.fingerprint()})
    checkpoint.unlink(missing_ok=True)
    return histories
