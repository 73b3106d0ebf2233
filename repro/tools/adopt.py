"""`repro adopt NAME --old-code DIR`: carries a run's in-flight state across a change of the training code.

A checkpoint resumes only under the training code that wrote it (checkpoints.py): other code might
continue it differently, and the result would match neither version. A campaign of many sessions still
needs the code to change now and then. Adoption decides it by running both: from each checkpoint of
NAME, the code that wrote it (the package under DIR, for example a `git worktree` of the commit its last
slice names) and the code here each train `updates` more updates, in processes of their own; if every
array of the two states is the same, bit for bit, the checkpoint is re-stamped with this code's digest,
and its last slice records the check. Otherwise nothing changes, and the message says so.

The check covers the updates it runs, on this machine; a change that acts only later (at a log point
it does not reach, or only in runs of another group) is not seen. It is meant for changes that leave the
update itself alone: early stopping of other runs, a new output, a refactoring.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from repro import checkpoints, files
from repro.config import Config, ConfigError

# Runs in a process of its own under either code: only what both versions have (GroupTrainer, its shards'
# restore, train and state_arrays). argv: checkpoint, group, precision, updates, output file, params file
# (each code reads the parameters in its own checkout's format; the runs' fingerprint must be the checkpoint's).
_CONTINUE = r"""
import inspect, json, sys
import numpy as np
from repro import config, datasets, files, train
path, group, precision, updates, out = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]
cfg = config.load(sys.argv[6])
runs = [cfg.runs[m] for m in cfg.groups[group].members]
data = [datasets.make(r.dataset) if r.dataset_name is None else datasets.load(files.DATA_DIR / r.dataset_name, r.dataset)
        for r in runs]
trainer = train.GroupTrainer(runs, data, precision)
position = int(path.rsplit("/", 1)[-1].split(".")[0])
shard = next(s for s in trainer.shards if s.positions[0] == position)
with np.load(path) as saved:
    meta = json.loads(str(saved["meta"]))
    arrays = [saved[f"state_{i}"] for i in range(sum(1 for n in saved.files if n.startswith("state_")))]
members = [runs[p] for p in shard.positions]
if train.group_fingerprint(members, precision) != meta["identity"]["runs"]:
    sys.exit(f"{sys.argv[6]} gives {group} other parameters than the checkpoint's")
if len(inspect.signature(shard.restore).parameters) == 2:
    shard.restore(arrays, meta)
else:
    shard.restore(arrays)
at = meta["updates"]
shard.train(at, at + updates)
np.savez(out, *shard.state_arrays())
"""


def _params(code: Path, here: Path, params: Path) -> Path:
    """The parameter file the code under `code` is to read: its own checkout's copy of `params` (the file this
    process reads, `repro --params`) where there is one (an older checkout may not know the keys added since),
    else `params` itself."""
    params = params.resolve()
    try:
        theirs = code / params.relative_to(here)
    except ValueError:  # not in this checkout: the same file for both
        return params
    return theirs if theirs.is_file() else params


def _continue(code: Path, checkpoint: Path, group: str, precision: str, updates: int, out: Path,
              params: Path) -> list[np.ndarray]:
    """The state after `updates` more updates from `checkpoint`, computed by the package under `code`."""
    env = {**os.environ, "PYTHONPATH": str(code)}
    found = subprocess.run([sys.executable, "-c", _CONTINUE, str(checkpoint), group, precision, str(updates),
                            str(out), str(params)], env=env, capture_output=True, text=True)
    if found.returncode:
        raise ConfigError(f"the code under {code} could not continue {checkpoint}:\n{found.stderr.strip()[-2000:]}")
    with np.load(out) as saved:
        return [saved[f"arr_{i}"] for i in range(len(saved.files))]


def adopt(config: Config, name: str, old_code: Path, updates: int, report,
          params: Path = Path("params.yaml")) -> list[str]:
    """Re-stamps every checkpoint of NAME's groups whose only difference is the training code, once both codes
    continue it to the same bytes; returns the checkpoints adopted. Refuses (ConfigError) on any other
    difference, on code under `old_code` that is not the code that wrote the checkpoint, and on any
    difference in what the two codes compute."""
    here = Path(__file__).resolve().parents[2]  # the checkout holding repro/tools/adopt.py
    old_code = old_code.resolve()
    if not (old_code / "repro" / "train.py").is_file():
        raise ConfigError(f"{old_code} holds no repro package (repro/train.py); give the folder of the checkout that "
                          f"wrote the checkpoint, for example `git worktree add /tmp/old COMMIT`")
    adopted = []
    groups = [group.name for group in config.trained_by(name)]
    found = sorted(path for group in groups for path in (files.CHECKPOINT_DIR / group).glob("*.npz"))
    if not found:
        raise ConfigError(f"no in-flight state of {name} under {files.CHECKPOINT_DIR}/ (unpack it first with "
                          f"`repro unpack FILE {name}`)")
    for path in found:
        group = path.parent.relative_to(files.CHECKPOINT_DIR).as_posix()
        meta = checkpoints.meta(path)
        made_as = meta.get("identity", {})
        wanted = {**made_as, "code": checkpoints.code_digest()}
        if made_as.get("code") == wanted["code"]:
            report(f"{path}: made by this code already; nothing to adopt")
            continue
        current = checkpoints.identity(made_as.get("runs"), made_as.get("data"), made_as.get("precision"))
        others = [r for r in checkpoints.differences(made_as, current) if not r.startswith("other training code")]
        if others:
            raise ConfigError(f"{path} differs in more than the code ({'; '.join(others)}); adoption carries a "
                              f"checkpoint across a code change only")
        # The old code's digest of the very files the checkpoint names (the training code's files may differ).
        old_digest = {path: checkpoints.source_digest((old_code / path).read_text(encoding="utf-8"))
                      if (old_code / path).is_file() else None for path in made_as.get("code", {})}
        if made_as["code"] != old_digest:
            raise ConfigError(f"{path} was not written by the code under {old_code} (its digests differ); give the "
                              f"checkout of the commit its last slice names ({meta['slices'][-1].get('commit')})")
        with tempfile.TemporaryDirectory() as tmp:
            before = _continue(old_code, path, group, made_as["precision"], updates, Path(tmp) / "old.npz",
                               _params(old_code, here, params))
            after = _continue(here, path, group, made_as["precision"], updates, Path(tmp) / "new.npz",
                              params.resolve())
        same = len(before) == len(after) and all(
            a.shape == b.shape and a.dtype == b.dtype and a.tobytes() == b.tobytes() for a, b in zip(before, after))
        if not same:
            raise ConfigError(f"{path}: the code here continues it differently from the code that wrote it (over "
                              f"{updates} updates from update {meta['updates']}); not adopted. Train it to the end "
                              f"with the old code, or start it again with this one")
        checkpoints.restamp(path, current, {"from": made_as["code"], "updates": [meta["updates"],
                                            meta["updates"] + updates], "identical": True})
        report(f"{path}: adopted (both codes give the same {len(after)} arrays, bit for bit, after {updates} "
               f"updates from update {meta['updates']})")
        adopted.append(str(path))
    return adopted

