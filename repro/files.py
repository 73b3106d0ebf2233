"""Atomic outputs: a reader (or DVC) sees either the old file or the finished new one.

A run killed halfway leaves at most a hidden temporary beside its target,
never a half-written file under the target's name.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import glob
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

# The repository's layout. dvc.yaml names the same paths for every stage.
DATA_DIR, RUNS_DIR, METRICS_DIR, CHECKPOINT_DIR = Path("data"), Path("runs"), Path("metrics"), Path("checkpoints")
FIGURE_DIR, REPORT_DIR, HISTORIES_DIR = Path("figures"), Path("reports"), Path("histories")
RECORDS_DIR = Path("records")  # per-run detail and file hashes: plain JSON, committed, not DVC metrics


@dataclass(frozen=True)
class Figure:
    """One `repro figures NAME` (DVC stage figure_NAME): the paper's figure(s) it draws, its files, its drawer."""
    name: str
    paper: str               # which of the paper's figures, as the claims report and the CLI's help name them
    files: tuple[str, ...]   # under FIGURE_DIR, in the order the drawer writes them
    drawer: str              # the function of repro/figures.py that draws it: (config, out_dir) -> paths written


# The one registry of figures: the CLI, the drawing code and the claims read it; a test holds it against dvc.yaml.
FIGURES = {figure.name: figure for figure in (
    Figure("curves", "Figure 1 (left) and Figure 4", ("fig1_left_accuracy.png", "fig4_loss.png"), "draw_curves"),
    Figure("table", "Figure 1 (right)", ("fig1_right_table.png",), "draw_table"),
    Figure("fractions", "Figure 1 (center)", ("fig1_center_fractions.png",), "draw_fractions"),
    Figure("interventions", "Figure 2 (left)", ("fig2_left_interventions.png",), "draw_interventions"),
    Figure("operations", "Figure 2 (right)", ("fig2_right_operations.png",), "draw_operations"),
    Figure("embeddings", "Figure 3", ("fig3_tsne.png",), "draw_embeddings"),
    Figure("progress", "Figure 5 (Nanda et al.'s measures)", ("fig5_progress.png",), "draw_progress"),
)}


def figure_file(name: str, index: int = 0) -> str:
    """The file name of figure NAME's INDEX-th drawing (e.g. figure_file("curves", 1) == "fig4_loss.png")."""
    return FIGURES[name].files[index]


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _mode(directory: bool) -> int:
    """What open() and mkdir() would give under the process's umask (mkstemp/mkdtemp give 0600/0700).

    Results must be readable by whoever reads them afterwards (in Docker: the host's user).
    """
    umask = os.umask(0)
    os.umask(umask)
    return (0o777 if directory else 0o666) & ~umask


# Temporaries are named .<target>.<pid>.<random>.tmp so that a later writer can tell a dead process's
# leftovers (swept) from a live writer's (left alone).
def _temporary_prefix(target: Path) -> str:
    return f".{target.name}.{os.getpid()}."


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0 only asks whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, under another user
        pass
    return True


def sweep_temporaries(target: Path) -> None:
    """Removes the temporaries beside `target` that processes no longer running left behind."""
    for leftover in target.parent.glob(f".{glob.escape(target.name)}.*.tmp*"):
        pid = leftover.name[len(target.name) + 2:].split(".", 1)[0]
        if pid.isdigit() and not _alive(int(pid)):
            if leftover.is_dir() and not leftover.is_symlink():
                shutil.rmtree(leftover, ignore_errors=True)
            else:
                leftover.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike, suffix: str = "") -> Iterator[Path]:
    """Yields a temporary path beside `target`; renames it onto `target` on success.

    `suffix` lets writers that insist on a file ending (Keras' `.weights.h5`)
    write to the temporary path.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    sweep_temporaries(target)
    fd, tmp = tempfile.mkstemp(prefix=_temporary_prefix(target), suffix=f".tmp{suffix}", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        os.chmod(tmp, _mode(directory=False))
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, target)
        _fsync_dir(target.parent)
    finally:
        tmp.unlink(missing_ok=True)


def write_text(target: str | os.PathLike, text: str) -> None:
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_bytes(target: str | os.PathLike, data: bytes) -> None:
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)


def write_json(target: str | os.PathLike, data: object) -> None:
    write_text(target, json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n")


_RENAME_EXCHANGE, _AT_FDCWD = 2, -100


def _exchange(a: Path, b: Path) -> bool:
    """Swaps two paths in one step (Linux renameat2); False where the system cannot."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        result = libc.renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)
    except (OSError, AttributeError):
        return False
    if result == 0:
        return True
    error = ctypes.get_errno()
    if error in (errno.EINVAL, errno.ENOSYS, errno.EPERM, errno.ENOTSUP):
        return False
    raise OSError(error, os.strerror(error), str(b))


def _replace_directory(tmp: Path, target: Path) -> Path | None:
    """Puts `tmp` at `target`; returns the path now holding the previous version, if any, to delete.

    Where the system can swap two directories in one step, `target` never goes missing, and concurrent
    writers each swap in a whole version (the last one wins). Elsewhere the old version is moved aside
    first, a moment in which `target` is absent.
    """
    for _ in range(100):  # another writer may create or replace `target` between the steps
        try:
            os.rename(tmp, target)  # no previous version
            return None
        except OSError as error:
            if error.errno not in (errno.ENOTEMPTY, errno.EEXIST, errno.EISDIR):
                raise
        if _exchange(tmp, target):
            return tmp
        aside = target.parent / f"{_temporary_prefix(target)}{os.urandom(4).hex()}.tmp"
        try:
            os.rename(target, aside)
        except FileNotFoundError:
            continue
        try:
            os.rename(tmp, target)
        except OSError as error:
            if error.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                raise
            shutil.rmtree(aside, ignore_errors=True)
            continue
        return aside
    raise OSError(f"could not replace {target}: other writers kept replacing it")


@contextlib.contextmanager
def atomic_directory(target: str | os.PathLike) -> Iterator[Path]:
    """Yields an empty temporary directory; it replaces `target` whole on success."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    sweep_temporaries(target)
    tmp = Path(tempfile.mkdtemp(prefix=_temporary_prefix(target), suffix=".tmp", dir=target.parent))
    try:
        yield tmp
        folder_mode, file_mode = _mode(directory=True), _mode(directory=False)
        for root, _, names in os.walk(tmp):
            os.chmod(root, folder_mode)
            for name in names:
                path = Path(root) / name
                if not path.is_symlink():
                    os.chmod(path, path.stat().st_mode & 0o111 | file_mode)
        previous = _replace_directory(tmp, target)
        _fsync_dir(target.parent)
        if previous is not None:
            shutil.rmtree(previous, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
