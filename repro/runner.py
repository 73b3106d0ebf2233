"""Running training: the shards of every group on threads, stopped by a deadline or a signal, checkpointed,
resumed, and written out. The numbers of an update are repro/train.py's; nothing here changes them.

One process trains a sweep: every shard of every group, on two threads on a
CPU, each shard to its end with its own evaluations and checkpoint, the
longest first (`train_groups`). Groups of one model and table size share
their compiled programs.

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

from repro import backend, checkpoints, determinism, files, history_csv, models, provenance, run_folder
from repro.config import ConfigError, RunConfig
from repro.datasets import Dataset
from repro.train import CHUNK_UPDATES, CPU_THREADS, GroupTrainer, Programs, Shard, group_fingerprint


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
