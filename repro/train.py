"""Training: groups of runs, each shard of runs one call of a compiled program; log-spaced evaluation; resumable.

A group is runs that share a model, an operation table, a budget and a log
grid (config.GroupConfig). A shard is some of its runs, their weights and
Adam moments stacked along a leading axis and updated together:
`backend.map_runs` applies one run's update to each (jax.vmap on JAX,
written out per run on TensorFlow), inside a compiled loop of up to
`CHUNK_UPDATES` updates; no Python runs per update. On a GPU a group is one
shard; on a CPU each run is one (GroupTrainer says why). Every run keeps its
own meaning: its seed, split, minibatch order, learning rate, warm-up and
interventions are per-run values in the program.

One process trains a sweep: every shard of every group, on two threads on a
CPU, each shard to its end with its own evaluations and checkpoint, the
longest first (`train_groups`). Groups of one model and table size share
their compiled programs.

Minibatches are drawn on the host: every epoch each run's training rows are
permuted by NumPy, keyed by (seed, epoch) alone, so the batch of update t is
the same however the training was split into calls, interrupted or resumed.
In a shard of several runs, smaller batches (full-batch runs of a smaller
training set) are padded to the shard's widest with zero weight.

Training may stop before its budget, at a deadline (`repro train --for 2h`)
or on Ctrl-C or SIGTERM (`Stop`): every shard checkpoints at the update it
has reached, within one compiled call, and the next process continues from
there exactly. Checkpoints are also written every `checkpoint_seconds`,
whatever the log spacing; repro/checkpoints.py owns their format, what a
checkpoint must match to be resumed (the same training code and libraries),
and the pack files that move them between machines. A named run stopped so
leaves a partial result: its history so far.

Outputs of each run (written by run_folder.write_run, together with every group of the process, atomically):
    history.csv        update, losses, accuracies, global weight norm
    model.weights.h5   the final weights (Keras format), unless the sweep's keep_weights leaves the run out
    run.json           parameters, seeds, dataset counts, group, backend and versions (and the weights'
                       SHA-256 where they are not kept; how far a stopped named run got)
    provenance.json    the machine and environment that made them, and every slice (process) that trained it
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import platform
import signal
import sys
import threading
import time
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import keras
import numpy as np
from keras import ops

from repro import backend, checkpoints, datasets, determinism, files, history_csv, models, provenance, run_folder
from repro.config import Config, ConfigError, ModelConfig, RunConfig, TrainingConfig
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


# --- stopping and checkpoints ---------------------------------------------------

def group_fingerprint(runs: list[RunConfig], precision: str) -> str:
    """What determines a shard's runs: its members, in order, the backend and the precision."""
    text = "|".join([backend.NAME, precision, *(f"{r.name}={r.fingerprint()}" for r in runs)])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class Stop:
    """Why training should end before its budget: a deadline (`repro train --for`), Ctrl-C or SIGTERM.

    Shards look before every compiled call, so a stop comes within one call (CHUNK_UPDATES updates,
    about 6 s of the paper's transformer on a laptop) and leaves a checkpoint at the update reached.
    Shards not started yet do not start.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self, seconds: float | None = None):
        self.deadline = None if seconds is None else time.monotonic() + seconds
        self.reason: str | None = None  # "deadline", "SIGINT" or "SIGTERM"
        self._event = threading.Event()

    def request(self, reason: str) -> None:
        if self.reason is None:
            self.reason = reason
        self._event.set()

    def requested(self) -> bool:
        if not self._event.is_set() and self.deadline is not None and time.monotonic() >= self.deadline:
            self.request("deadline")
        return self._event.is_set()

    @contextlib.contextmanager
    def on_signals(self):
        """While inside, the first signal asks every shard to checkpoint and stop; a second one exits at once.

        The second exits without writing anything: each shard's last checkpoint (atomic) stands.
        """
        if threading.current_thread() is not threading.main_thread():  # only the main thread may set handlers
            yield
            return
        previous = {number: signal.getsignal(number) for number in self.SIGNALS}

        def handler(number, _frame):
            name = signal.Signals(number).name
            if self.reason in ("SIGINT", "SIGTERM"):
                _report(f"{name} again: exiting at once; the last checkpoints stand")
                os._exit(128 + number)
            self.request(name)
            _report(f"{name}: every shard checkpoints at its next {CHUNK_UPDATES}-update boundary and stops "
                    f"(again to exit at once)")

        for number in self.SIGNALS:
            signal.signal(number, handler)
        try:
            yield
        finally:
            for number, old in previous.items():
                signal.signal(number, old)


def record(run: RunConfig, dataset: Dataset, trainer: GroupTrainer, index: int, weights_digest: str | None) -> dict:
    """run.json: what determines the results; identical wherever they are reproduced on the same backend.

    `weights_digest`: the trained weights' SHA-256 where the weights themselves are not written.
    """
    model = trainer.model
    digest = {} if weights_digest is None else {run_folder.WEIGHTS_DIGEST: weights_digest}
    stopped = trainer.stopped_early(index)
    if stopped is not None:
        digest[run_folder.STOPPED] = {"update": stopped, "budget": run.training.updates,
                                      "rule": history_csv.stopping_rule(run.training.stop_after)}
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
        **digest,
    }


def _report(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


class Progress:
    """One self-rewriting status line on a terminal: updates done (all runs together), updates/s, time left.

    Silent when stderr is not a terminal (logs, pipes) or under CI, where a
    line every second would only bury the output that matters. The rate is
    measured from the first report on, so compilation does not inflate the
    time left. Shards report from their threads; `advance` adds up.
    """

    def __init__(self, name: str, total: int, runs: int):
        self.enabled = sys.stderr.isatty() and not os.environ.get("CI")
        self.name, self.total, self.runs = name, total, runs
        self.started = self.shown = None
        self.first = self.done = 0
        self._lock = threading.Lock()

    def advance(self, updates: int, train_accuracy: float, val_accuracy: float) -> None:
        with self._lock:
            self.done += updates
            self.update(self.done, train_accuracy, val_accuracy)

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
        line = (f"{self.name}: {done:,}/{self.total:,} updates ({done / self.total:.0%}) of {self.runs} run(s), "
                f"{rate:,.1f} updates/s in all, {int(left // 60)}m{int(left % 60):02d}s left, "
                f"last train acc {train_accuracy:.3f}, val acc {val_accuracy:.3f}")
        sys.stderr.write(f"\r\x1b[K{line}" + ("\n" if done >= self.total else ""))
        sys.stderr.flush()


@dataclass
class _Job:
    """One shard of one group, trained start to end by one thread (or until a stop)."""

    group: str
    trainer: GroupTrainer
    shard: Shard
    checkpoint: Path
    made_as: dict  # checkpoints.identity: what a checkpoint must match to be resumed
    slices: list[dict] = field(default_factory=list)  # the processes that trained it, this one's included
    stopped_at: int | None = None  # the update it stopped at, if it stopped before its budget

    def cost(self) -> int:
        return self.updates * self.shard.width * len(self.shard.positions)

    @property
    def updates(self) -> int:
        return self.trainer.runs[self.shard.positions[0]].training.updates


def _train_job(job: _Job, progress: Progress, checkpoint_seconds: float, stop: Stop) -> None:
    """Trains one shard through its log schedule, from its checkpoint if one continues exactly.

    A checkpoint is written every `checkpoint_seconds` of wall time (between compiled calls, whatever
    the log spacing), at a stop, and after the last update: the last, so that a process killed before
    it writes its groups keeps its finished shards. Mid-way between log points a checkpoint holds the
    state at its update and the history up to the log point before; resuming continues from that very
    update, with the same compiled calls as an uninterrupted run.
    """
    if stop.requested():  # never started: its checkpoint, if any, is left as it is
        job.stopped_at = -1
        return
    shard = job.shard
    schedule = history_csv.log_schedule(job.updates, job.trainer.runs[shard.positions[0]].training.log_points)
    resumed = checkpoints.load(job.checkpoint, job.made_as, _report)
    if resumed is None:
        at, earlier = 0, []
        shard.log(0)
    else:
        meta, saved, state = resumed
        shard.restore(state, meta)
        shard.history = list(np.swapaxes(saved, 0, 1))
        at, earlier = meta["updates"], meta["slices"]
        _report(f"{job.group}: runs {shard.positions} resuming from update {at} ({job.checkpoint})")
    began, clock, wall = at, time.monotonic(), time.time()
    job.slices = earlier
    saved_at, saved_when = (at if resumed else None), time.monotonic()
    progress.advance(at * len(shard.positions), 0.0, 0.0)

    def save(reached: int) -> None:
        nonlocal saved_at, saved_when
        job.slices = [*earlier, checkpoints.slice_record(began, reached, time.monotonic() - clock, wall)]
        checkpoints.save(job.checkpoint, job.made_as, reached, job.slices, np.stack(shard.history, axis=1),
                         shard.state_arrays(), shard.stopped_meta())
        saved_at, saved_when = reached, time.monotonic()

    def pause(reached: int) -> bool:
        if stop.requested():
            return True
        if reached != saved_at and time.monotonic() - saved_when >= checkpoint_seconds:
            save(reached)
        return False

    for previous, target in zip(schedule, schedule[1:]):
        if not shard.live:  # every run stopped by its rule: the shard is done
            break
        if target <= at:
            continue
        begin = max(previous, at)
        at = shard.train(begin, target, pause)
        if at < target:
            progress.advance((at - begin) * len(shard.live), 0.0, 0.0)
            save(at)
            job.stopped_at = at
            return
        live = len(shard.live)
        shard.log(target)
        progress.advance((target - begin) * live, float(np.nanmean(shard.history[-1][:, 2])),
                         float(np.nanmean(shard.history[-1][:, 4])))
    if at != saved_at:
        save(at)


def _run_all(jobs: list[_Job], workers: int, progress: Progress, checkpoint_seconds: float, stop: Stop) -> None:
    """Every job, in order, on `workers` threads; the first failure cancels what has not started."""
    with ThreadPoolExecutor(workers) as pool:
        futures = [pool.submit(_train_job, job, progress, checkpoint_seconds, stop) for job in jobs]
        finished, _ = wait(futures, return_when=FIRST_EXCEPTION)
        failed = [f for f in finished if f.exception() is not None]
        if failed:
            for future in futures:
                future.cancel()
            raise failed[0].exception()


@dataclass
class Trained:
    """What `train_groups` did: every group's histories if all finished, else where each shard stopped."""

    histories: list[np.ndarray]  # per group, (runs, log points, 6); empty if any shard stopped early
    stopped: list[tuple[str, list[int], int, int]]  # (group, runs' positions, update reached or -1, budget)
    reason: str | None  # why they stopped: "deadline", "SIGINT", "SIGTERM"; None if nothing stopped
    finished: list[tuple[RunConfig, np.ndarray]] = field(default_factory=list)  # each run's last history row


def train_target(config: Config, name: str, precision: str = "fp32", seconds: float | None = None,
                 must_resume: bool = False) -> Trained:
    """`repro train NAME`: every group NAME trains (Config.trained_by), into runs/NAME/ (a group: its name).

    A named run's data are its generated table (data/, a DVC output); a sweep member's split is made
    here, which is cheap. `seconds`: stop after so long (Stop), checkpointing every shard. `must_resume`:
    a checkpoint this code cannot continue is a ConfigError before anything trains, and is left as it is.
    """
    groups = config.trained_by(name)
    root = name if name in config.sweeps else groups[0].name
    jobs = []
    for group in groups:
        runs = [config.runs[member] for member in group.members]
        data = [datasets.make(run.dataset) if run.dataset_name is None
                else datasets.load(files.DATA_DIR / run.dataset_name, run.dataset) for run in runs]
        jobs.append((group.name, runs, data))
    trained = train_groups(root, jobs, files.RUNS_DIR / root, files.CHECKPOINT_DIR, precision,
                           config.execution.checkpoint_seconds, config.keeps_weights, Stop(seconds), must_resume)
    trained.finished = [(run, history[-1]) for (_, runs, _), group_history in zip(jobs, trained.histories)
                        for run, history in zip(runs, group_history)]
    return trained


def train_groups(name: str, groups: list[tuple[str, list[RunConfig], list[Dataset]]], out_dir: Path,
                 checkpoint_dir: Path, precision: str = "fp32", checkpoint_seconds: float = 60.0,
                 keeps_weights: Callable[[RunConfig], bool] = lambda run: True, stop: Stop | None = None,
                 must_resume: bool = False) -> Trained:
    """Trains `groups` (name, runs, datasets) in one process, resuming each shard from its checkpoint.

    `name` is a sweep, a group or a run; every run's folder is written under
    `out_dir` at its path relative to `name`, all at once when every group is
    done. Groups of one model and table size share compiled programs, and on a
    CPU the two threads take shards of any group, the longest first. A run
    for which `keeps_weights` is false gets its weights' digest instead of the
    weights (Config.keeps_weights).

    `stop` (default: none but Ctrl-C and SIGTERM) ends training early: every shard checkpoints where
    it is, and nothing is written under `out_dir` but a named run's partial result (`_write_partial`).
    """
    stop = Stop() if stop is None else stop
    programs = Programs()
    trainers = [GroupTrainer(runs, data, precision, programs) for _, runs, data in groups]
    jobs = []
    for (group, runs, data), trainer in zip(groups, trainers):
        for shard in trainer.shards:
            members = [runs[p] for p in shard.positions]
            content = [*(np.asarray(ops.convert_to_numpy(t)) for t in shard.table),
                       *(data[p].train for p in shard.positions)]
            made_as = checkpoints.identity(group_fingerprint(members, precision), checkpoints.data_digest(content),
                                           precision)
            jobs.append(_Job(group, trainer, shard, checkpoint_dir / group / f"{shard.positions[0]}.npz", made_as))
    jobs.sort(key=_Job.cost, reverse=True)
    if must_resume:  # before any shard trains: a refused state is kept, never replaced by a fresh start
        for job in jobs:
            why = checkpoints.refusal(job.checkpoint, job.made_as)
            if why:
                raise ConfigError(f"{job.checkpoint}: not resumed, since {why}; it is left as it is. Carry it "
                                  f"across with `repro adopt {name} --old-code FOLDER` (paper/campaign.sh adopt "
                                  f"COMMIT), or delete it to start {job.group} over")
    runs_in_all = sum(len(runs) for _, runs, _ in groups)
    progress = Progress(name, sum(run.training.updates for _, runs, _ in groups for run in runs), runs_in_all)
    workers = 1 if backend.accelerator() == "gpu" else CPU_THREADS
    with stop.on_signals():
        _run_all(jobs, workers, progress, checkpoint_seconds, stop)

    stopped = [(job.group, job.shard.positions, job.stopped_at, job.updates) for job in jobs
               if job.stopped_at is not None]
    if stopped:
        _write_partial(name, groups, trainers, jobs, out_dir)
        return Trained([], stopped, stop.reason)
    histories = [trainer.histories() for trainer in trainers]
    environment = provenance.environment()
    slices = {(id(job.trainer), p): job.slices for job in jobs for p in job.shard.positions}
    with files.atomic_directory(out_dir) as tmp:
        for trainer, (group, runs, data), history in zip(trainers, groups, histories):
            weights = trainer.weights()
            for index, (run, dataset) in enumerate(zip(runs, data)):
                kept = keeps_weights(run)
                digest = None if kept else run_folder.weights_digest(weights[index])
                save = trainer.model_with(index, weights[index]).save_weights if kept else None
                run_folder.write_run(tmp / Path(run.directory).relative_to(name), history[index],
                                     record(run, dataset, trainer, index, digest),
                                     {**environment, "parameters_hash": run.fingerprint(),
                                      "slices": slices[id(trainer), index]}, save)
    for job in jobs:
        job.checkpoint.unlink(missing_ok=True)
    for group, _, _ in groups:
        _remove_empty_folders(checkpoint_dir / group, checkpoint_dir)
    return Trained(histories, [], None)


def _write_partial(name: str, groups, trainers: list[GroupTrainer], jobs: list[_Job], out_dir: Path) -> None:
    """A named run stopped early is a result so far: its folder holds the history to its last log point.

    Only for a named run trained alone (a sweep's groups appear whole or not at all). Its run.json says
    `partial`: the updates logged and the budget; the weights are in the checkpoint, not in the folder,
    since they are past the last log point. A shard that never started leaves any earlier folder as it is.
    """
    if len(groups) != 1 or len(groups[0][1]) != 1 or groups[0][1][0].directory != name:
        return
    (job,), trainer, (run,), (dataset,) = jobs, trainers[0], groups[0][1], groups[0][2]
    if job.stopped_at is None or job.stopped_at < 0 or len(job.shard.history) < 2:
        return
    if run_folder.complete(out_dir, run.fingerprint()):
        _report(f"{out_dir} holds this run complete; kept it (the stopped run's state is under checkpoints/)")
        return
    history = np.stack(job.shard.history, axis=1)[0]
    partial = {"updates": int(history[-1, 0]), "budget": run.training.updates}
    with files.atomic_directory(out_dir) as tmp:
        run_folder.write_run(tmp, history, {**record(run, dataset, trainer, 0, None), run_folder.PARTIAL: partial},
                             {**provenance.environment(), "parameters_hash": run.fingerprint(), "slices": job.slices})


def _remove_empty_folders(folder: Path, root: Path) -> None:
    """Removes `folder` and its parents up to `root` (excluded) while they are empty."""
    while folder != root and folder.is_dir() and not any(folder.iterdir()):
        folder.rmdir()
        folder = folder.parent
