"""Atomic outputs under stress: concurrent writers, a polling reader, a killed writer's leftovers, file modes."""

import os
import subprocess
import sys
import threading

from conftest import REPO
from repro import files

WRITER = """
import sys
from pathlib import Path
from repro import files
target, tag = Path(sys.argv[1]), sys.argv[2]
for i in range(40):
    with files.atomic_directory(target) as tmp:
        for name in ("a", "b", "c"):
            (tmp / name).write_text(f"{tag}-{i}")
"""


def _hidden(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_concurrent_writers_and_a_polling_reader(tmp_path):
    target = tmp_path / "group"
    with files.atomic_directory(target) as tmp:
        for name in ("a", "b", "c"):
            (tmp / name).write_text("first")
    seen, stop = {"missing": 0, "mixed": 0, "checks": 0}, threading.Event()

    def read():
        while not stop.is_set():
            seen["checks"] += 1
            try:
                versions = {(target / name).read_text() for name in ("a", "b", "c")}
            except FileNotFoundError:
                seen["missing"] += 1
                continue
            seen["mixed"] += len(versions) > 1

    reader = threading.Thread(target=read)
    reader.start()
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    writers = [subprocess.Popen([sys.executable, "-c", WRITER, str(target), tag], env=env, stderr=subprocess.PIPE,
                                text=True) for tag in ("x", "y")]
    errors = [w.communicate()[1] for w in writers]
    stop.set()
    reader.join()
    assert [w.returncode for w in writers] == [0, 0], errors
    assert seen["checks"] > 100 and seen["missing"] == 0
    # A reader that opens three files one after another may straddle a swap; the folder itself is always whole.
    versions = {(target / name).read_text() for name in ("a", "b", "c")}
    assert len(versions) == 1 and versions.pop() in ("x-39", "y-39")
    assert _hidden(tmp_path) == []  # no .tmp or .old folders left behind


def test_a_dead_writers_leftovers_are_swept_and_a_live_ones_kept(tmp_path):
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead = int(finished.stdout)
    target = tmp_path / "group"
    (tmp_path / f".group.{dead}.abc123.tmp").mkdir()
    (tmp_path / f".group.{dead}.abc123.tmp" / "history.csv").write_text("half")
    (tmp_path / f".group.{dead}.zz.tmp.npz").write_text("half")
    (tmp_path / f".group.{os.getpid()}.live.tmp").mkdir()  # a writer still at work
    (tmp_path / f".other.{dead}.q.tmp").mkdir()  # another target's: not ours to judge
    with files.atomic_directory(target) as tmp:
        (tmp / "a").write_text("new")
    assert _hidden(tmp_path) == [f".group.{os.getpid()}.live.tmp", f".other.{dead}.q.tmp"]


def test_outputs_are_readable_by_others_under_the_usual_umask(tmp_path):
    old = os.umask(0o022)
    try:
        files.write_text(tmp_path / "report.md", "x")
        with files.atomic_directory(tmp_path / "run") as tmp:
            (tmp / "sub").mkdir()
            (tmp / "sub" / "history.csv").write_text("x")
    finally:
        os.umask(old)
    assert (tmp_path / "report.md").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "run").stat().st_mode & 0o777 == 0o755
    assert (tmp_path / "run" / "sub").stat().st_mode & 0o777 == 0o755
    assert (tmp_path / "run" / "sub" / "history.csv").stat().st_mode & 0o777 == 0o644
