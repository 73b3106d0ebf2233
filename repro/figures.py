"""Figures: PNGs under figures/, each readable without the code.

Figure 1 (left): train and validation accuracy against updates, log axis.
Figure 4: train and validation loss against updates (the double descent of
the validation loss).

Each panel is one run; its title says the model, the operation and the data
fraction, and a caption line under the figure states the scale it ran at.
"""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display; also keeps output identical across sessions
import matplotlib.pyplot as plt
import pandas as pd

from repro import evaluate, files

FIGURE_DIR = Path("figures")
# PNG text chunks would name the matplotlib version; the bytes should depend on the data alone.
_PNG_METADATA = {"Software": None}


def _panel_title(record: dict) -> str:
    run, data = record["run"], record["dataset"]
    model = "transformer (2 layers, width 128)" if run["model"]["kind"] == "transformer" else (
        f"MLP ({run['model']['hidden']} ReLU units)"
    )
    modulus = f", p = {data['modulus']}" if data["modulus"] else ""
    return f"{model}\n{data['formula']}{modulus}, {run['dataset']['train_fraction']:.0%} training data"


def _caption(record: dict) -> str:
    t = record["run"]["training"]
    optimiser = "Adam" if t["weight_decay"] == 0 else f"AdamW (weight decay {t['weight_decay']:g})"
    return (
        f"{record['run']['name']}: {optimiser}, lr {t['learning_rate']:g}, batch {record['batch_size']}, "
        f"{t['updates']:,} updates, seed {t['seed']}"
    )


def _load(run_dir: Path) -> tuple[pd.DataFrame, dict]:
    history = evaluate.read_history(run_dir)
    record = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))
    return history, record


def _curves(runs: list[tuple[pd.DataFrame, dict]], quantity: str, title: str, target: Path) -> None:
    """One panel per run: train and validation `quantity` ("accuracy" or "loss") against updates."""
    fig, axes = plt.subplots(1, len(runs), figsize=(6 * len(runs), 4.6), squeeze=False)
    for ax, (history, record) in zip(axes[0], runs):
        shown = history[history["update"] > 0]  # update 0 has no place on a log axis
        for split, colour, label in (("train", "tab:red", "train"), ("val", "tab:green", "validation")):
            ax.plot(shown["update"], shown[f"{split}_{quantity}"], color=colour, label=label)
            if quantity == "accuracy":
                reached = evaluate.first_reached(history, f"{split}_accuracy")
                if isinstance(reached, int):
                    ax.axvline(reached, color=colour, linestyle=":", linewidth=1,
                               label=f"{label} ≥ 99% at update {reached:,}")
        ax.set_xscale("log")
        if quantity == "loss":
            ax.set_yscale("log")
            ax.set_ylabel("cross-entropy loss")
        else:
            ax.set_ylim(-0.02, 1.02)
            ax.set_ylabel("accuracy")
        ax.set_xlabel("optimisation updates (log scale)")
        ax.set_title(_panel_title(record), fontsize=10)
        ax.grid(True, which="major", alpha=0.3)
        ax.legend(loc="best", fontsize=8)
    fig.suptitle(title)
    caption = "\n".join(_caption(record) for _, record in runs)
    fig.text(0.5, 0.01, caption, ha="center", va="bottom", fontsize=8, color="dimgray")
    fig.tight_layout(rect=(0, 0.04 + 0.03 * len(runs), 1, 1))
    with files.atomic_path(target, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=110, format="png", metadata=_PNG_METADATA)
    plt.close(fig)


def curve_figures(run_dirs: list[Path], out_dir: Path = FIGURE_DIR) -> list[Path]:
    """Figure 1 (left) and Figure 4 for the given runs; returns the files written."""
    runs = [_load(d) for d in run_dirs]
    written = [out_dir / "fig1_left_accuracy.png", out_dir / "fig4_loss.png"]
    _curves(runs, "accuracy", "Figure 1 (left): training fits early, validation generalizes much later", written[0])
    _curves(runs, "loss", "Figure 4: training and validation loss", written[1])
    return written
