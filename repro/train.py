"""Training numerics: groups of runs, each shard of runs one call of a compiled program; log-spaced evaluation.

A group is runs that share a model, an operation table, a budget and a log
grid (config.GroupConfig). A shard is some of its runs, their weights and
Adam moments stacked along a leading axis and updated together:
`backend.map_runs` applies one run's update to each (jax.vmap on JAX,
written out per run on TensorFlow), inside a compiled loop of up to
`CHUNK_UPDATES` updates; no Python runs per update. On a GPU a group is one
shard; on a CPU each run is one (GroupTrainer says why). Every run keeps its
own meaning: its seed, split, minibatch order, learning rate, warm-up and
interventions are per-run values in the program.

Minibatches are drawn on the host: every epoch each run's training rows are
permuted by NumPy, keyed by (seed, epoch) alone, so the batch of update t is
the same however the training was split into calls, interrupted or resumed.
In a shard of several runs, smaller batches (full-batch runs of a smaller
training set) are padded to the shard's widest with zero weight.

One update of one run, top to bottom: `Program._update` (the minibatch, the
loss, its gradient) and `adamw` (the optimizer step).

This module decides every number of a run; repro/runner.py runs it (threads, deadlines, signals,
checkpoints, outputs), and checkpoints.TRAINING_CODE is this module's import closure: a checkpoint resumes
only under the code that wrote it.
"""

from __future__ import annotations

import hashlib
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Callable

import keras
import numpy as np
from keras import ops

from repro import backend, determinism, history_csv, models
from repro.config import ConfigError, ModelConfig, RunConfig, TrainingConfig

if TYPE_CHECKING:  # a type only: the tables arrive as arrays, and the data digest guards them (checkpoints.py)
    from repro.datasets import Dataset

# Updates per compiled call. Fixed, so that one compilation serves every call.
CHUNK_UPDATES = 256
CPU_THREADS = 2  # shards trained at once on a CPU (the laptop's two cores)
_SHUFFLE, _WEIGHT_NOISE, _UPDATE_NOISE, _DROPOUT, _REPLACEMENT = 1, 2, 3, 4, 5  # purposes that key random draws
_HYPER = ("learning_rate", "weight_decay", "beta_1", "beta_2", "epsilon", "warmup_updates",
          "update_noise", "weight_noise", "dropout")


def batch_size(run: RunConfig, num_train: int) -> int:
    """The paper's minibatch, min(batch_size, half the training set), or the whole set."""
    if run.training.full_batch:
        return num_train
    return max(1, min(run.training.batch_size, num_train // 2))


class Batches:
    """Each run's minibatches, drawn as its `batch_order` says (TrainingConfig), keyed by its seed alone.

    "epochs": every epoch a fresh permutation of its training rows, keyed by (seed, epoch), cut into full
    batches (the rest of the epoch unused); "official": the same, with the last, smaller batch kept (the
    official code's iterator), its missing rows -1; "replacement": the batch of update t drawn uniformly with
    replacement, keyed by (seed, t). Either way the batch of update t is the same however the training was
    split into calls, interrupted or resumed.
    """

    def __init__(self, rows: list[np.ndarray], sizes: list[int], seeds: list[int], orders: list[str] | None = None):
        self.rows, self.sizes, self.seeds = rows, sizes, seeds
        self.orders = orders or ["epochs"] * len(rows)
        self.per_epoch = [-(-len(r) // s) if o == "official" else len(r) // s
                          for r, s, o in zip(rows, sizes, self.orders)]
        self._orders: list[dict[int, np.ndarray]] = [{} for _ in rows]

    @property
    def ragged(self) -> bool:
        """Whether some batch is smaller than its run's size (its missing rows are -1, weighted 0)."""
        return any(o == "official" and len(r) % s for r, s, o in zip(self.rows, self.sizes, self.orders))

    def order(self, run: int, epoch: int) -> np.ndarray:
        """The epoch's batches of `run`, as (batches per epoch, batch size) row indices."""
        cache = self._orders[run]
        if epoch not in cache:
            if len(cache) > 4:
                cache.clear()
            rng = np.random.default_rng([_SHUFFLE, self.seeds[run], epoch])
            size, count = self.sizes[run], self.per_epoch[run]
            permuted = rng.permutation(self.rows[run])[: size * count]
            cache[epoch] = np.pad(permuted, (0, size * count - len(permuted)), constant_values=-1).reshape(count, size)
        return cache[epoch]

    def subset(self, keep: list[int]) -> Batches:
        """The batches of runs `keep` only (compaction): each run's batches are its own, whoever else is stacked."""
        return Batches([self.rows[r] for r in keep], [self.sizes[r] for r in keep], [self.seeds[r] for r in keep],
                       [self.orders[r] for r in keep])

    def take(self, start: int, count: int, width: int, length: int) -> np.ndarray:
        """Row indices of updates start … start + count - 1: (length, runs, width), padded with 0 (-1 if ragged)."""
        out = np.full((length, len(self.rows), width), -1 if self.ragged else 0, dtype=np.int32)
        for run, per_epoch in enumerate(self.per_epoch):
            size = self.sizes[run]
            if self.orders[run] == "replacement":
                rows = self.rows[run]
                batches = np.stack([rows[np.random.default_rng([_REPLACEMENT, self.seeds[run], update])
                                         .integers(0, len(rows), size)] for update in range(start, start + count)])
                out[:count, run, :size] = batches
                continue
            first, last = start // per_epoch, (start + count - 1) // per_epoch
            batches = np.concatenate([self.order(run, e) for e in range(first, last + 1)])
            offset = start - first * per_epoch
            out[:count, run, :size] = batches[offset: offset + count]
        return out


def _cross_entropy(labels, logits, dtype: str = "float32"):
    """Per-example cross-entropy of integer labels under softmax(logits), computed in `dtype` (a float32 result)."""
    if dtype != "float32":
        logits = ops.cast(logits, dtype)
    # A one-hot product rather than a gather: the gather's gradient is a scatter, slow under XLA on a CPU.
    picked = ops.sum(logits * ops.one_hot(labels, ops.shape(logits)[-1], dtype=logits.dtype), axis=-1)
    loss = ops.logsumexp(logits, axis=-1) - picked
    return loss if dtype == "float32" else ops.cast(loss, "float32")


def _loss(y, logits, dtype: str = "float32"):
    """Per-example training loss: the answer's cross-entropy; in the official sequence (models.official_transformer)
    the mean of the answer's and of the <eos> after it, as the official code averages over both positions."""
    if len(logits.shape) == 3:
        return (_cross_entropy(y, logits[:, 0], dtype) + _cross_entropy(ops.zeros_like(y), logits[:, 1], dtype)) / 2
    return _cross_entropy(y, logits, dtype)


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


class Program:
    """A model's two compiled functions, training and evaluation, shared by every shard that uses them.

    The table (inputs x, answers y) is an argument, not a constant, so one
    compilation serves every group of one table size: the 13 groups of the
    `operations` sweep compile each function 3 times, not 13.
    """

    def __init__(self, model: keras.Model, uses: dict[str, bool]):
        self.model, self.uses = model, uses
        self.train_chunk = backend.compile(self._train_chunk_function)
        self.evaluate = backend.compile(self._evaluate_function)

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

    def _update(self, state, h, table, rows, step):
        """One update of one run on the training rows `rows` of `table` (x, y)."""
        params = state["params"]
        key = ops.stack([h["seed"], ops.cast(step, "int32")])
        weights = h["batch_weights"]
        if self.uses["ragged"]:  # batches of several sizes (batch_order "official"): a missing row is -1
            weights, rows = ops.cast(rows >= 0, "float32"), ops.maximum(rows, 0)
        x, y = ops.take(table[0], rows, axis=0), ops.take(table[1], rows, axis=0)

        def loss(at):
            logits = self._logits(at, x, True, h["dropout"], backend.fold_in(key, _DROPOUT))
            return ops.sum(_loss(y, logits, self.uses["loss_dtype"]) * weights) / ops.sum(weights), None

        at = params
        if self.uses["weight_noise"]:  # the gradient is taken at noisy weights and applied to the clean ones
            at = [w + n for w, n in zip(params, _noise(params, key, _WEIGHT_NOISE, h["weight_noise"]))]
        _, grads = backend.value_and_grad(loss)(at)
        targets = state["targets"] if self.uses["decay_to_init"] else None
        params, moments, velocities = adamw(params, grads, state["moments"], state["velocities"], targets, step, h)
        if self.uses["update_noise"]:
            params = [w + n for w, n in zip(params, _noise(params, key, _UPDATE_NOISE, h["update_noise"]))]
        return {"params": params, "moments": moments, "velocities": velocities, "targets": state["targets"]}

    def _train_chunk_function(self, state, hyper, x, y, start, count, rows):
        def body(i, state):
            step = start + i
            return backend.map_runs(lambda s, h, r: self._update(s, h, (x, y), r, step), state, hyper, rows[i])

        return backend.loop(count, body, state)

    def _evaluate_function(self, params, x, y, train_mask):
        """(runs, 5): train loss, train accuracy, validation loss, validation accuracy, weight norm."""

        def one(params, train):
            logits = models.answer_logits(self._logits(params, x, False))
            loss = _cross_entropy(y, logits, self.uses["loss_dtype"])
            correct = ops.cast(ops.equal(ops.cast(ops.argmax(logits, axis=-1), "int32"), y), "float32")
            values = []
            for mask in (train, 1.0 - train):
                count = ops.sum(mask)
                values += [ops.sum(loss * mask) / count, ops.sum(correct * mask) / count]
            values.append(ops.sqrt(sum(ops.sum(ops.square(w)) for w in params)))
            return ops.stack(values)

        return backend.map_runs(one, params, train_mask)


class Programs:
    """The programs of one process, by model and switches, and who may compile them when.

    A function's first call with new shapes traces and compiles it. A laptop
    pipeline once died of a segmentation fault when two threads made such
    calls at once; so each first call is made under one lock, and later calls
    of that signature run freely in parallel.
    """

    def __init__(self):
        self._programs: dict[tuple, Program] = {}
        self._called: set[tuple] = set()
        self._compiling = threading.Lock()

    def get(self, model_config: ModelConfig, num_elements: int, uses: dict[str, bool]) -> Program:
        key = (model_config, num_elements, tuple(sorted(uses.items())))
        if uses["loss_dtype"] == "float64" and backend.NAME == "jax":  # JAX computes float64 only in its x64 mode
            raise ConfigError("loss_dtype float64 needs the TensorFlow backend: JAX's 64-bit mode, which must be on "
                              "before any array is made, is not set up here")
        if key not in self._programs:  # built by the main thread only, before any worker starts
            self._programs[key] = Program(models.build(model_config, num_elements, dropout=uses["dropout"]), uses)
        return self._programs[key]

    def call(self, signature: tuple, function):
        """function(), alone if it is the first call of `signature`."""
        if signature in self._called:
            return function()
        with self._compiling:
            result = function()
            self._called.add(signature)
            return result


def _uses(training: list[TrainingConfig], ragged: bool) -> dict[str, bool]:
    """The switches a program needs: noise and dropout cost work even at zero, so they are in it only if used;
    `ragged`: some batch is smaller than its run's size (Batches.ragged)."""
    return {"weight_noise": any(t.weight_noise for t in training), "update_noise": any(t.update_noise for t in training),
            "dropout": any(t.dropout for t in training), "decay_to_init": any(t.decay_towards == "init" for t in training),
            "ragged": ragged, "loss_dtype": training[0].loss_dtype}  # one per group (config._check_group)


class Shard:
    """Runs of a group stacked into one call of a program: weights, Adam moments, hyperparameters, batches.

    A shard also keeps its own history, so that shards train independently:
    each thread takes a shard and trains it to the end, evaluating at its log
    points, while the other thread trains another, of this group or another.
    """

    def __init__(self, positions: list[int], runs: list[RunConfig], table: tuple, train: np.ndarray,
                 sizes: list[int], initial: list[list[np.ndarray]], program: Program, programs: Programs):
        self.positions, self.table, self.program, self.programs = positions, table, program, programs
        self.width = max(sizes[p] for p in positions)
        t = [runs[p].training for p in positions]
        hyper = {name: np.array([getattr(x, name) for x in t], dtype="float32") for name in _HYPER}
        hyper["decay_to_init"] = np.array([x.decay_towards == "init" for x in t], dtype="float32")
        hyper["seed"] = np.array([x.seed for x in t], dtype="int32")
        own = np.array([sizes[p] for p in positions])
        hyper["batch_weights"] = (np.arange(self.width)[None] < own[:, None]).astype("float32")
        self.hyper = {k: ops.convert_to_tensor(v) for k, v in hyper.items()}
        self.train_mask = ops.convert_to_tensor(train[positions].astype("float32"))
        self.batches = _batches(positions, runs, train, sizes)
        params = [np.stack(per_run) for per_run in zip(*initial)]
        state = {
            "params": params,
            "moments": [np.zeros_like(p) for p in params],
            "velocities": [np.zeros_like(p) for p in params],
            "targets": [p.copy() for p in params] if program.uses["decay_to_init"] else [],
        }
        self.state = keras.tree.map_structure(ops.convert_to_tensor, state)
        # (runs, 6) per log point reached: update, then evaluate()'s five; NaN for a run already stopped
        self.history: list[np.ndarray] = []
        # Early stopping (TrainingConfig.stop_after). `stacked`: the runs (indices into `positions`) whose
        # state the compiled calls update, all of them at first; `stopped`: run → the update it stopped at,
        # `final`: run → its weights there. A stopped run stays stacked, its updates unused, until
        # half the stack has stopped; then the rest is compacted into a smaller stack (`compact`).
        self.stop_after = [runs[p].training.stop_after for p in positions]
        self.stacked = list(range(len(positions)))
        self.stopped: dict[int, int] = {}
        self.final: dict[int, list[np.ndarray]] = {}

    def _signature(self, function: str) -> tuple:
        return id(self.program), function, len(self.stacked), tuple(self.table[0].shape), self.width

    @property
    def live(self) -> list[int]:
        """The runs still training (indices into `positions`)."""
        return [i for i in self.stacked if i not in self.stopped]

    def log(self, update: int) -> None:
        """Evaluates the stacked runs at `update` and appends the history row; then stops each run that
        its rule (history_csv.decided_at) says is decided, and compacts the stack once half has stopped."""
        row = np.full((len(self.positions), 6), np.nan)
        row[:, 0] = update
        row[self.stacked, 1:] = self.evaluate()
        row[list(self.stopped), 1:] = np.nan
        self.history.append(row)
        rows = np.stack(self.history, axis=1)
        for i in self.live:
            if self.stop_after[i] and history_csv.decided_at(rows[i], self.stop_after[i]) == len(self.history) - 1:
                self.stopped[i] = update
                at = self.stacked.index(i)
                self.final[i] = [np.asarray(ops.convert_to_numpy(p))[at] for p in self.state["params"]]
        if self.live and 2 * (len(self.stacked) - len(self.live)) >= len(self.stacked):
            self.compact(self.live)

    def compact(self, keep: list[int]) -> None:
        """Keeps only runs `keep` (indices into `positions`) in the stacked state, hyperparameters and batches.

        The batch width stays the group's widest, so each kept run computes exactly what it computed
        before (padding rows have zero weight, and a sum over another width could round otherwise).
        """
        at = [self.stacked.index(i) for i in keep]

        def pick(array):
            return ops.convert_to_tensor(np.asarray(ops.convert_to_numpy(array))[at])

        self.state = keras.tree.map_structure(pick, self.state)
        self.hyper = {k: pick(v) for k, v in self.hyper.items()}
        self.train_mask = pick(self.train_mask)
        self.batches = self.batches.subset(at)
        self.stacked = list(keep)

    def train(self, start: int, stop: int, pause: Callable[[int], bool] | None = None) -> int:
        """Updates start … stop - 1 of the shard's runs; returns the update reached (stop, unless paused).

        `pause(update)` is asked before every compiled call (every CHUNK_UPDATES updates) and may save a
        checkpoint; when it returns True, training stops there.
        """
        begin = start
        while begin < stop:
            if pause is not None and pause(begin):
                break
            count = min(CHUNK_UPDATES, stop - begin)
            rows = ops.convert_to_tensor(self.batches.take(begin, count, self.width, CHUNK_UPDATES))
            arguments = (self.state, self.hyper, *self.table, ops.convert_to_tensor(np.int32(begin)),
                         ops.convert_to_tensor(np.int32(count)), rows)
            self.state = self.programs.call(self._signature("train"), lambda: self.program.train_chunk(*arguments))
            begin += count
        keras.tree.map_structure(ops.convert_to_numpy, self.state["params"][:1])  # wait for the device
        return begin

    def evaluate(self) -> np.ndarray:
        """(stacked runs, 5), in the shard's order."""
        found = self.programs.call(self._signature("evaluate"), lambda: self.program.evaluate(
            self.state["params"], *self.table, self.train_mask))
        return np.asarray(ops.convert_to_numpy(found), dtype=np.float64)

    def state_arrays(self) -> list[np.ndarray]:
        """The stacked state's arrays, then each stopped run's final weights (in the order of `stopped_meta`)."""
        finals = [w for i in sorted(self.stopped) for w in self.final[i]]
        return [np.asarray(ops.convert_to_numpy(a)) for a in keras.tree.flatten(self.state)] + finals

    def stopped_meta(self) -> dict:
        """What a checkpoint records of early stopping, beside `state_arrays` (absent: nothing stopped)."""
        if not self.stopped:
            return {}
        return {"stacked": self.stacked, "stopped": {str(i): u for i, u in sorted(self.stopped.items())}}

    def restore(self, arrays: list[np.ndarray], meta: dict) -> None:
        """Puts back `state_arrays` and `stopped_meta` (a checkpoint's meta) of a shard that was built afresh."""
        stopped = {int(i): int(u) for i, u in meta.get("stopped", {}).items()}
        if meta.get("stacked", self.stacked) != self.stacked:
            self.compact([int(i) for i in meta["stacked"]])
        leaves = keras.tree.flatten(self.state)
        finals, arrays = arrays[len(leaves):], arrays[:len(leaves)]
        per_run = len(self.state["params"])
        if len(arrays) != len(leaves) or any(a.shape != tuple(b.shape) for a, b in zip(arrays, leaves)) \
                or len(finals) != per_run * len(stopped):
            raise ValueError("checkpoint does not match this shard's model")
        self.state = keras.tree.pack_sequence_as(self.state, [ops.convert_to_tensor(a) for a in arrays])
        self.stopped = stopped
        self.final = {i: finals[k * per_run:(k + 1) * per_run] for k, i in enumerate(sorted(stopped))}


def _batches(positions: list[int], runs: list[RunConfig], train: np.ndarray, sizes: list[int]) -> Batches:
    """The minibatches of runs `positions` of a group."""
    return Batches([np.flatnonzero(train[p]) for p in positions], [sizes[p] for p in positions],
                   [runs[p].training.seed for p in positions], [runs[p].training.batch_order for p in positions])


class GroupTrainer:
    """A group of runs in shards, each shard one call of a shared compiled program.

    On a GPU the whole group is one shard: one program, the runs vmapped. On a
    CPU every run is a shard of its own, and `CPU_THREADS` threads train them:
    XLA runs the MLP's small matrix products on one core, and a program
    written out for several runs was slower per run than a program of one
    (an `operations` group, 6 MLP runs at batch 512 on two threads: two shards
    of 3 runs 1,330-1,540 updates/s in all, 6 shards of one 1,610-1,710, and
    evaluation 30% faster). So a run gives the same bytes alone as in any
    group. The shards are a fixed function of the group and the device kind,
    never of the core count.
    """

    def __init__(self, runs: list[RunConfig], datasets: list[Dataset], precision: str = "fp32",
                 programs: Programs | None = None):
        determinism.configure(precision)
        self.runs = runs
        self.programs = Programs() if programs is None else programs
        first = datasets[0]
        model_config = runs[0].model
        table = (ops.convert_to_tensor(models.encode(model_config, first.a, first.b, first.c, first.num_elements)),
                 ops.convert_to_tensor(models.labels(model_config, first.c)))
        train = np.stack([d.train for d in datasets])
        self.sizes = [batch_size(run, int(n)) for run, n in zip(runs, train.sum(axis=1))]
        layout = [[p] for p in range(len(runs))] if backend.accelerator() == "cpu" else [list(range(len(runs)))]
        self.shards = []
        for positions in layout:
            uses = _uses([runs[p].training for p in positions], _batches(positions, runs, train, self.sizes).ragged)
            program = self.programs.get(runs[0].model, first.num_elements, uses)
            initial = []
            for p in positions:
                determinism.seed(runs[p].training.seed)  # each run's own initial weights
                model = models.build(runs[p].model, first.num_elements, dropout=uses["dropout"])
                initial.append([np.asarray(v) for v in model.trainable_variables])
            self.shards.append(Shard(positions, runs, table, train, self.sizes, initial, program, self.programs))

    @property
    def model(self) -> keras.Model:
        return self.shards[0].program.model

    def _each_shard(self, work) -> list:
        if len(self.shards) == 1:
            return [work(self.shards[0])]
        with ThreadPoolExecutor(CPU_THREADS) as pool:
            return list(pool.map(work, self.shards))

    def _in_group_order(self, per_shard: list[np.ndarray]) -> np.ndarray:
        """Arrays whose first axis is each shard's runs, joined in the group's order of runs."""
        order = np.concatenate([shard.positions for shard in self.shards])
        return np.concatenate(per_shard)[np.argsort(order)]

    def train_updates(self, start: int, stop: int) -> None:
        """Runs updates start … stop - 1 of every run (for tests and `repro bench`; training uses `train_groups`)."""
        self._each_shard(lambda shard: shard.train(start, stop))

    def evaluate(self) -> np.ndarray:
        """(runs, 5), in the group's order (before any run has stopped early)."""
        return self._in_group_order(self._each_shard(Shard.evaluate))

    def histories(self) -> list[np.ndarray]:
        """Each run's (log points, 6) history, in the group's order; a run stopped early has fewer points."""
        found = {}
        for shard in self.shards:
            rows = np.stack(shard.history, axis=1)
            for i, position in enumerate(shard.positions):
                found[position] = rows[i][~np.isnan(rows[i, :, 1])] if i in shard.stopped else rows[i]
        return [found[position] for position in range(len(self.runs))]

    def state_arrays(self) -> list[np.ndarray]:
        return [array for shard in self.shards for array in shard.state_arrays()]

    def restore(self, arrays: list[np.ndarray]) -> None:
        """Puts back `state_arrays` of a group none of whose runs has stopped early."""
        for shard in self.shards:
            count = len(keras.tree.flatten(shard.state))
            shard.restore(arrays[:count], {})
            arrays = arrays[count:]

    def stopped_early(self, run: int) -> int | None:
        """The update at which run `run` (its place in the group) stopped by its rule, or None."""
        shard = next(shard for shard in self.shards if run in shard.positions)
        return shard.stopped.get(shard.positions.index(run))

    def weights(self) -> list[list[np.ndarray]]:
        """Every run's trained weights, in the group's order (a run stopped early: where it stopped); each shard's
        stack is copied to the host once."""
        found = {}
        for shard in self.shards:
            stacked = [ops.convert_to_numpy(p) for p in shard.state["params"]]
            for i, position in enumerate(shard.positions):
                found[position] = shard.final[i] if i in shard.final else [w[shard.stacked.index(i)] for w in stacked]
        return [found[position] for position in range(len(self.runs))]

    def model_with(self, run: int, weights: list[np.ndarray]) -> keras.Model:
        """Run `run`'s model holding `weights` (its dropout layers at the run's rate)."""
        model = next(shard.program.model for shard in self.shards if run in shard.positions)
        for variable, value in zip(model.trainable_variables, weights):
            variable.assign(value)
        for variable in model.non_trainable_variables:
            if variable.name == "rate":
                variable.assign(self.runs[run].training.dropout)
        return model


# --- what a shard's checkpoint belongs to ---------------------------------------------

def group_fingerprint(runs: list[RunConfig], precision: str) -> str:
    """What determines a shard's runs: its members, in order, the backend and the precision."""
    text = "|".join([backend.NAME, precision, *(f"{r.name}={r.fingerprint()}" for r in runs)])
    return hashlib.sha256(text.encode()).hexdigest()[:16]
