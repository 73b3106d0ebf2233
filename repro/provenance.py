"""What produced a result: package versions, backend and devices, CPU, threads, git commit.

`repro env` prints it; every run writes it to runs/<run>/provenance.json.
It is kept out of run.json on purpose: the commit and the machine change
from one checkout to the next while the results may stay byte-identical,
and `repro verify` compares results, not the circumstances of a run.
"""

from __future__ import annotations

import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path

PACKAGES = ("tensorflow-cpu", "tensorflow", "jax", "jaxlib", "jax-cuda12-plugin", "jax-cuda13-plugin", "keras",
            "numpy", "h5py", "ml-dtypes", "pandas", "matplotlib",
            "scikit-learn", "dvc", "click", "pyyaml")
ENVIRONMENT_VARIABLES = ("OMP_NUM_THREADS", "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS", "TF_ENABLE_ONEDNN_OPTS",
                         "TF_XLA_FLAGS", "XLA_FLAGS", "KERAS_BACKEND", "JAX_COMPILATION_CACHE_DIR")


def packages() -> dict[str, str]:
    found = {}
    for name in PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found


def cpu() -> dict:
    info = {"machine": platform.machine(), "logical_cores": os.cpu_count()}
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        lines = cpuinfo.read_text(errors="replace").splitlines()
        fields = dict(line.split(":", 1) for line in lines if ":" in line)
        fields = {k.strip(): v.strip() for k, v in fields.items()}
        info["model"] = fields.get("model name", "unknown")
        flags = set(fields.get("flags", "").split())
        # The vector units decide XLA's round-off: the reason results may differ between machines.
        info["vector_extensions"] = sorted(flags & {"sse4_2", "avx", "avx2", "fma", "avx512f", "avx512_bf16", "amx_tile"})
    else:
        info["model"] = platform.processor() or "unknown"
    return info


def git() -> dict:
    def run(*args):
        result = subprocess.run(["git", *args], capture_output=True, text=True, check=False)
        return result.stdout.strip() if result.returncode == 0 else None

    try:
        commit = run("rev-parse", "HEAD")
        dirty = bool(run("status", "--porcelain", "--untracked-files=no")) if commit else None
    except OSError:  # no git at all, e.g. in a container
        commit, dirty = None, None
    if commit is None and os.environ.get("REPRO_GIT_COMMIT"):  # a copy without .git, e.g. on a lent GPU machine
        commit = f"{os.environ['REPRO_GIT_COMMIT']} (given by REPRO_GIT_COMMIT: no git repository here)"
    return {"commit": commit or "unknown (no git repository)", "uncommitted_changes": dirty}


def environment() -> dict:
    """Everything above, for this process."""
    from repro import determinism

    return {
        "python": platform.python_version(),
        "system": f"{platform.system()} {platform.release()}",
        "packages": packages(),
        "backend": determinism.details(),
        "cpu": cpu(),
        "environment": {k: os.environ.get(k) for k in ENVIRONMENT_VARIABLES},
        "git": git(),
    }
