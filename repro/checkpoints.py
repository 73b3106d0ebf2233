"""In-flight training state: the one module that writes and reads checkpoints, and the pack files that move them.

    checkpoints/<group>/<shard>.npz   one shard's state, named by the shard's first run in its group
        meta        JSON: the format, what made the state (`identity`), the update the state is at, and
                    the slices (processes) that have trained it so far
        history     (runs, log points reached, 6): update, then evaluation's five numbers
        state_<i>   weights, Adam moments and velocities (and decay targets), stacked over the shard's runs

A checkpoint is resumed only by a process that would continue it exactly as the process that made it
would have: the same runs and data, the same training code, the same library versions, backend and
precision. The code is compared as parsed Python without docstrings (`code_digest`), so a comment or a
docstring may change mid-campaign; a changed line of code may not. Anything else is refused with its
reason, and training starts over; a damaged file is deleted. Either way nothing blocks a rerun.

A pack (`repro pack NAME FILE`, `repro unpack FILE`) is an uncompressed tar of one training target's
checkpoints under their own relative paths, and `pack.json`. It carries a run's whole in-flight state to
another folder or machine: weights, optimiser moments, the history so far, and the update it is at (the
batch order is a function of the seed and the update alone, train.Batches). Unpacked where the same code
and libraries run, the run continues exactly as it would have continued where it was packed.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import io
import json
import platform
import re
import tarfile
import time
from pathlib import Path

import numpy as np

from repro import files, imports
from repro.config import ConfigError

FORMAT = 2  # 1: the fingerprint alone (before slices and code digests); such files are refused
PACK_JSON = "pack.json"
# The modules whose code decides every number of a training run (its state after each update and its
# evaluations): repro/train.py and every module it imports, read from the code (repro/imports.py). The runner
# and the file formats shape no number; the data are compared by content instead (data_digest).
TRAINING_CODE = tuple(imports.closure(["repro/train.py"]))
_MEMBER = re.compile(r"^[A-Za-z0-9_.\-]+(/[A-Za-z0-9_.\-]+)*\.npz$")


def _without_docstrings(tree: ast.AST) -> ast.AST:
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (isinstance(body, list) and body and isinstance(body[0], ast.Expr)
                and isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str)):
            node.body = body[1:] or [ast.Pass()]
    return tree


def source_digest(source: str) -> str:
    """SHA-256 (first 16 hex digits) of Python source as parsed code: comments and docstrings left out."""
    return hashlib.sha256(ast.dump(_without_docstrings(ast.parse(source))).encode()).hexdigest()[:16]


@functools.cache
def code_digest() -> dict[str, str]:
    """Each training module's source_digest, read once per process: the code this process runs."""
    return {path: source_digest((imports.ROOT / path).read_text(encoding="utf-8")) for path in TRAINING_CODE}


def data_digest(arrays: list[np.ndarray]) -> str:
    """SHA-256 (first 16 hex digits) of the arrays a shard trains on: the table and its runs' training masks."""
    digest = hashlib.sha256()
    for array in arrays:
        array = np.ascontiguousarray(array)
        digest.update(f"{array.dtype.str}{array.shape}".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()[:16]


def identity(runs: str, data: str, precision: str) -> dict:
    """What a checkpoint must match to be resumed: `runs` the runs' fingerprint, `data` data_digest."""
    import keras

    from repro import backend

    return {"runs": runs, "data": data, "code": dict(code_digest()), "backend": backend.NAME, "precision": precision,
            "libraries": {"python": platform.python_version(), "numpy": np.__version__, "keras": keras.__version__,
                          **backend.versions()}}


def differences(saved: dict, wanted: dict) -> list[str]:
    """Why a checkpoint made as `saved` cannot continue as `wanted`, in words (empty: it can)."""
    reasons = []
    if saved.get("runs") != wanted["runs"]:
        reasons.append("other parameters")
    if saved.get("data") != wanted["data"]:
        reasons.append("other data")
    code = saved.get("code", {})
    changed = [name for name in wanted["code"] if code.get(name) != wanted["code"][name]]
    if changed:
        reasons.append(f"other training code ({', '.join(changed)} changed)")
    for key in ("backend", "precision"):
        if saved.get(key) != wanted[key]:
            reasons.append(f"{key} {saved.get(key)} (here {wanted[key]})")
    libraries = saved.get("libraries", {})
    changed = [f"{k} {libraries.get(k)} (here {v})" for k, v in wanted["libraries"].items() if libraries.get(k) != v]
    if changed:
        reasons.append(f"other library versions: {', '.join(changed)}")
    return reasons


def save(path: Path, made_as: dict, updates: int, slices: list[dict], history: np.ndarray,
         state: list[np.ndarray], extra: dict | None = None) -> None:
    """Writes a checkpoint atomically: a reader sees the previous one or this one, never a part.

    `extra`: more for the meta (the trainer's word on runs stopped early), read back by whoever wrote it."""
    meta = {**(extra or {}), "format": FORMAT, "identity": made_as, "updates": int(updates), "slices": slices}
    arrays = {f"state_{i}": a for i, a in enumerate(state)}
    with files.atomic_path(path, suffix=".npz") as tmp:
        np.savez(tmp, meta=np.array(json.dumps(meta, sort_keys=True)), history=history, **arrays)


def restamp(path: Path, made_as: dict, check: dict) -> None:
    """Gives a checkpoint a new identity (`repro adopt`, once other code was shown to continue it to the same
    bytes); its last slice records `check`, the evidence. The arrays are written back unchanged."""
    with np.load(path) as saved:
        arrays = {name: saved[name] for name in saved.files}
    meta = json.loads(str(arrays.pop("meta")))
    meta["identity"] = made_as
    meta["slices"][-1]["code_changed_after"] = check
    with files.atomic_path(path, suffix=".npz") as tmp:
        np.savez(tmp, meta=np.array(json.dumps(meta, sort_keys=True)), **arrays)


def meta(path: Path) -> dict:
    """A checkpoint's description (its format, identity, updates and slices), without its arrays."""
    with np.load(path) as saved:
        return _meta(saved)


def _meta(saved) -> dict:
    return json.loads(str(saved["meta"])) if "meta" in saved.files else {"format": 1}


def _read(path: Path) -> tuple[dict, np.ndarray, list[np.ndarray]]:
    with np.load(path) as saved:
        meta = _meta(saved)
        if meta.get("format") != FORMAT:
            return meta, np.zeros(0), []
        count = sum(1 for name in saved.files if name.startswith("state_"))
        return meta, saved["history"], [saved[f"state_{i}"] for i in range(count)]


def refusal(path: Path, wanted: dict) -> str | None:
    """Why the checkpoint at `path` cannot be resumed as `wanted` (damaged, older format, other code...), or None
    if it can (or there is none). Reads it; changes nothing."""
    if not path.is_file():
        return None
    try:
        meta = _read(path)[0]
    except Exception as error:
        return f"it is damaged ({type(error).__name__}: {error})"
    if meta.get("format") != FORMAT:
        return f"it was written by an older version of repro (checkpoint format {meta.get('format')}, here {FORMAT})"
    reasons = differences(meta["identity"], wanted)
    return f"it was made with {'; '.join(reasons)}" if reasons else None


def load(path: Path, wanted: dict, report) -> tuple[dict, np.ndarray, list[np.ndarray]] | None:
    """(meta, history, state) of a checkpoint that continues exactly as `wanted` would; else None.

    A refused checkpoint is reported through `report(message)` and left to be replaced by the next
    save; a damaged one is reported and deleted.
    """
    if not path.is_file():
        return None
    try:
        meta, history, state = _read(path)
    except Exception as error:  # a truncated or damaged file: never trust it, never let it block a rerun
        report(f"{path} is damaged ({type(error).__name__}: {error}); deleted it, training from the start")
        path.unlink(missing_ok=True)
        return None
    if meta.get("format") != FORMAT:
        report(f"{path} was written by an older version of repro (checkpoint format {meta.get('format')}, "
               f"here {FORMAT}); not resumed, training from the start (it will be replaced)")
        return None
    reasons = differences(meta["identity"], wanted)
    if reasons:
        report(f"{path} was made with {'; '.join(reasons)}; resuming it would match neither version, so it is "
               f"not resumed: training from the start (it will be replaced)")
        return None
    return meta, history, state


@functools.cache
def _this_process() -> dict:
    from repro import backend, provenance

    git = provenance.git()
    cpu = provenance.cpu()
    return {"host": platform.node(), "cpu": cpu.get("model"), "vector_extensions": cpu.get("vector_extensions"),
            "backend": backend.NAME, "device": backend.accelerator(), "devices": backend.devices(),
            "commit": git["commit"], "uncommitted_changes": git["uncommitted_changes"]}


def slice_record(start: int, stop: int, seconds: float, started: float) -> dict:
    """One process's share of a run: where it ran, on what, which updates, how long (provenance.json's slices)."""
    return {**_this_process(), "updates": [int(start), int(stop)], "seconds": round(float(seconds), 1),
            "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started))}


# --- packs --------------------------------------------------------------------

def pack(checkpoint_dir: Path, groups: list[str], target: Path, name: str) -> list[str]:
    """Writes every checkpoint of `groups` into the tar `target`; returns what it packed, as relative paths."""
    found = sorted(path for group in groups for path in (checkpoint_dir / group).glob("*.npz"))
    if not found:
        raise ConfigError(f"no in-flight state of {name} under {checkpoint_dir}/ (nothing trained, or it has "
                          f"finished); train it with `repro train {name} --for DURATION` first")
    members = []
    for path in found:
        try:
            meta, _, _ = _read(path)
        except Exception as error:
            raise ConfigError(f"{path} is damaged ({type(error).__name__}: {error}); not packed: delete it, or "
                              f"run `repro train {name}` to replace it") from None
        members.append({"path": path.relative_to(checkpoint_dir).as_posix(), "updates": meta.get("updates")})
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        def add(member: str, data: bytes) -> None:  # no owners, times or modes: the same state packs to the same bytes
            info = tarfile.TarInfo(member)
            info.size, info.mode, info.mtime = len(data), 0o644, 0
            tar.addfile(info, io.BytesIO(data))

        add(PACK_JSON, json.dumps({"name": name, "format": FORMAT, "checkpoints": members}, indent=2).encode())
        for member in members:
            add(member["path"], (checkpoint_dir / member["path"]).read_bytes())
    files.write_bytes(target, buffer.getvalue())
    return [member["path"] for member in members]


def unpack(source: Path, checkpoint_dir: Path, groups: list[str] | None = None,
           check_only: bool = False) -> list[tuple[str, str]]:
    """Puts a pack's checkpoints under `checkpoint_dir`; returns (relative path, what happened) for each.

    Only plain files with plain relative names are read, and nothing of the archive's owners or modes
    is kept. A checkpoint here that is further along than the packed one is kept. `groups`, if given,
    are the groups the pack may hold (those of the target it is unpacked for). `check_only`: every member
    read and checked, nothing written (a ConfigError says what is wrong).
    """
    try:
        with tarfile.open(source, mode="r:") as tar:
            entries, size = {}, source.stat().st_size
            for info in tar.getmembers():
                if not info.isfile() or not (info.name == PACK_JSON or _MEMBER.match(info.name)) \
                        or ".." in info.name.split("/"):
                    raise ConfigError(f"{source}: {info.name!r} is not a plain checkpoint file; a pack holds "
                                      f"{PACK_JSON} and <group>/<shard>.npz files only (made by `repro pack`)")
                if info.issparse() or info.size > size:  # a member can only be as large as the file holding it
                    raise ConfigError(f"{source}: {info.name!r} claims {info.size:,} bytes in a file of {size:,}; "
                                      f"not a pack made by `repro pack`; nothing unpacked")
                entries[info.name] = tar.extractfile(info).read()
    except (tarfile.TarError, OSError, EOFError) as error:
        raise ConfigError(f"{source} is not a readable pack ({type(error).__name__}: {error}); make it again "
                          f"with `repro pack`") from None
    if PACK_JSON not in entries:
        raise ConfigError(f"{source} has no {PACK_JSON}: not a pack made by `repro pack`")
    checked = []  # every member is checked before any is written: a bad pack unpacks nothing
    for member, data in sorted(entries.items()):
        if member == PACK_JSON:
            continue
        group = member.rsplit("/", 1)[0]
        if groups is not None and group not in groups:
            raise ConfigError(f"{source} holds {member}, which is not a group of the target it is unpacked for "
                              f"({', '.join(groups)})")
        try:
            with np.load(io.BytesIO(data)) as saved:
                meta = json.loads(str(saved["meta"]))
            updates = meta["updates"]
            if not isinstance(updates, int) or isinstance(updates, bool) or updates < 0 \
                    or not isinstance(meta.get("identity"), dict) or not isinstance(meta.get("slices"), list):
                raise ValueError("its description (updates, identity, slices) is not one `repro pack` writes")
        except Exception as error:
            raise ConfigError(f"{source}: {member} is damaged ({type(error).__name__}: {error}); nothing "
                              f"unpacked") from None
        checked.append((member, data, updates))
    if check_only:
        return [(member, f"readable (update {updates})") for member, _, updates in checked]
    outcome = []
    for member, data, updates in checked:
        path = checkpoint_dir / member
        try:
            here = _read(path)[0].get("updates") if path.is_file() else None
        except Exception:  # a damaged checkpoint here is replaced
            here = None
        if isinstance(here, int) and here > updates:
            outcome.append((member, f"kept the checkpoint here (update {here}; the pack's is at {updates})"))
            continue
        files.write_bytes(path, data)
        outcome.append((member, f"unpacked (update {updates})"))
    return outcome
