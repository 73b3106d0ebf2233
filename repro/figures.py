"""Figures: PNGs under figures/, each readable without the code.

Figure 1 (left): train and validation accuracy against updates, log axis.
Figure 1 (center): updates to 99% accuracy against the training fraction.
Figure 1 (right): an operation table with the validation cells left blank.
Figure 2 (left): best validation accuracy against training fraction, per intervention.
Figure 2 (right): best validation accuracy against training fraction, per operation.
Figure 3: t-SNE of the output layer's rows (S5 cosets; the number line of x + y),
drawn from records/embeddings.json: `repro embeddings` (repro/embeddings.py)
computes the maps and scores, this module only draws.
Figure 4: train and validation loss against updates (the double descent of
the validation loss).
Figure 5 (Nanda et al.'s, not the paper's): the progress measures against
updates, with the phases their rule places (repro/progress.py).

Every figure has a title, labelled axes, a legend and a caption line that
states the scale it ran at (model, budget, seeds, fractions). Which figures
exist, their files and their drawers: the registry in repro/files.py.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display; also keeps output identical across sessions
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from repro import analysis, files, history_csv, results, run_folder
from repro.config import ConfigError
from repro.files import DATA_DIR, FIGURE_DIR, RECORDS_DIR, RUNS_DIR
# PNG text chunks would name the matplotlib version; the bytes should depend on the data alone.
_PNG_METADATA = {"Software": None}


def _panel_title(record: dict) -> str:
    run, data = record["run"], record["dataset"]
    model = "transformer (2 layers, width 128)" if run["model"]["kind"] == "transformer" else (
        f"MLP ({run['model']['hidden']} ReLU units)"
    )
    modulus = f", p = {data['modulus']}" if data["modulus"] else ""
    return f"{model}\n{data['formula']}{modulus}, {run['dataset']['train_fraction']:.0%} training data"


def _caption(record: dict, scale: str) -> str:
    t, d = record["run"]["training"], record["determinism"]
    optimiser = "Adam" if t["weight_decay"] == 0 else f"AdamW (weight decay {t['weight_decay']:g})"
    partial = record.get(run_folder.PARTIAL)
    return (
        f"{scale} scale, {record['run']['name']}: {optimiser}, lr {t['learning_rate']:g}, "
        f"batch {record['batch_size']}, "
        f"{t['updates']:,} updates, seed {t['seed']}; {d['backend']} on {d['device']}, {d['precision']}"
        + (f" [partial: {partial['updates']:,} of {partial['budget']:,} updates]" if partial else "")
    )


def _load(run_dir: Path, run) -> tuple[pd.DataFrame, dict]:
    """A run's history and run.json; a run stopped before its budget (run.json's `partial`) as far as it got."""
    record = run_folder.read(run_dir, run)
    return history_csv.read(run_dir / history_csv.FILE, run, until=results.trained_to(record)), record


def _curves(runs: list[tuple[pd.DataFrame, dict]], quantity: str, title: str, target: Path, scale: str) -> None:
    """One panel per run: train and validation `quantity` ("accuracy" or "loss") against updates."""
    fig, axes = plt.subplots(1, len(runs), figsize=(6 * len(runs), 4.6), squeeze=False)
    for ax, (history, record) in zip(axes[0], runs):
        shown = history[history["update"] > 0]  # update 0 has no place on a log axis
        for split, colour, label in (("train", "tab:red", "train"), ("val", "tab:green", "validation")):
            ax.plot(shown["update"], shown[f"{split}_{quantity}"], color=colour, label=label)
            if quantity == "accuracy":
                reached = analysis.first_reached(history, f"{split}_accuracy")
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
    _save(fig, target, "\n".join(_caption(record, scale) for _, record in runs))


def _save(fig, target: Path, caption: str) -> None:
    """Adds the caption line(s) under the axes and writes the PNG atomically."""
    lines = caption.count("\n") + 1
    fig.text(0.5, 0.01, caption, ha="center", va="bottom", fontsize=8, color="dimgray")
    fig.tight_layout(rect=(0, 0.01 + 0.035 * lines, 1, 1))
    with files.atomic_path(target, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=110, format="png", metadata=_PNG_METADATA, bbox_inches="tight")  # outside legends too
    plt.close(fig)


def curve_figures(runs: list[tuple[Path, object]], scale: str, out_dir: Path = FIGURE_DIR) -> list[Path]:
    """Figure 1 (left) and Figure 4 for the given (folder, RunConfig) pairs; returns the files written."""
    runs = [_load(run_dir, run) for run_dir, run in runs]
    written = [out_dir / name for name in files.FIGURES["curves"].files]
    _curves(runs, "accuracy", "Figure 1 (left): training fits early, validation generalizes much later", written[0],
            scale)
    _curves(runs, "loss", "Figure 4: training and validation loss", written[1], scale)
    return written


# --- Figure 1 (right): the table ---------------------------------------------


def table_figure(dataset, target: Path, corner: int = 12) -> None:
    """The whole table as colours (validation cells blank), and its top-left corner as symbols."""
    n = dataset.num_elements
    grid = np.full((n, n), np.nan)
    train = dataset.train
    grid[dataset.a[train], dataset.b[train]] = dataset.c[train]
    # Cells that are no equation at all (y = 0 in x / y) are grey, not to be mistaken for validation cells.
    undefined = np.ones((n, n), dtype=bool)
    undefined[dataset.a, dataset.b] = False
    m = dataset.manifest
    fig, (whole, zoom) = plt.subplots(1, 2, figsize=(12, 6))
    cmap = plt.get_cmap("viridis").with_extremes(bad="white")
    image = whole.imshow(np.ma.masked_invalid(grid), cmap=cmap, interpolation="nearest")
    grey = matplotlib.colors.ListedColormap(["lightgray"])
    whole.imshow(np.ma.masked_where(~undefined, undefined), cmap=grey, interpolation="nearest")
    whole.set_title(f"all {m['equations']:,} equations: colour = answer c, white = validation"
                    + (", grey = none" if undefined.any() else ""))
    fig.colorbar(image, ax=whole, fraction=0.046, label="answer c (element index)")
    names = dataset.elements
    zoom.set_xlim(-0.5, corner - 0.5)
    zoom.set_ylim(corner - 0.5, -0.5)
    for i in range(corner):
        for j in range(corner):
            known = not np.isnan(grid[i, j])
            colour = "lightgray" if undefined[i, j] else "lightsteelblue" if known else "white"
            zoom.add_patch(plt.Rectangle((j - 0.5, i - 0.5), 1, 1, fc=colour, ec="gray", lw=0.5))
            text = "" if undefined[i, j] else names[int(grid[i, j])] if known else "?"
            zoom.text(j, i, text, ha="center", va="center", fontsize=7 if len(names[0]) > 2 else 9)
    zoom.set_xticks(range(corner), names[:corner], rotation=90 if len(names[0]) > 2 else 0)
    zoom.set_yticks(range(corner), names[:corner])
    zoom.set_title(f"top-left {corner}×{corner} corner: answers in training cells, ? = validation")
    zoom.add_patch(plt.Rectangle((0, 0), 0, 0, color="lightsteelblue", label="training equation (seen)"))
    zoom.add_patch(plt.Rectangle((0, 0), 0, 0, fc="white", ec="gray", label="validation equation (hidden)"))
    if undefined.any():
        zoom.add_patch(plt.Rectangle((0, 0), 0, 0, color="lightgray", label="no equation (undefined)"))
    zoom.legend(loc="upper right", bbox_to_anchor=(1.0, -0.11), ncol=3, fontsize=8)
    for ax in (whole, zoom):
        ax.set_xlabel("b (second operand)")
        ax.set_ylabel("a (first operand)")
    modulus = f", p = {m['modulus']}" if m["modulus"] else ""
    fig.suptitle(f"Figure 1 (right): the table of a ∘ b = {m['formula']}{modulus} as the model sees it")
    caption = (f"{m['train']:,} training and {m['validation']:,} validation equations "
               f"({m['train_fraction']:.0%} training data, split seed {m['seed']})")
    _save(fig, target, caption)


# --- sweeps: Figures 1 (center) and 2 -----------------------------------------


def _untrained(summary: dict) -> list[str]:
    """The groups a sweep trained in part lacks, named without what all its groups share."""
    g, names = summary["grid"], [group.split("/", 1)[1] for group in summary["missing_groups"]]
    if len(g["seeds"]) == 1:
        names = [name.removesuffix(f"-seed{g['seeds'][0]}") for name in names]
    if len(g["interventions"]) == 1:
        names = [name.removesuffix(f"-{g['interventions'][0]}") for name in names]
    if len(g["operations"]) == 1:
        names = [name.removeprefix(f"{g['operations'][0]}-") for name in names]
    return names


def _partial(summary: dict) -> str:
    """A title's warning that the figure lacks groups of its grid (empty for a whole sweep)."""
    trained, missing = len(summary["trained_groups"]), len(summary["missing_groups"])
    return f" [partial: {trained} of {trained + missing} groups trained]" if missing else ""


def _sweep_caption(summary: dict, what: str, scale: str) -> str:
    """What the figure holds: runs drawn out of the grid's, model, budget, seeds, fractions, and what made them."""
    g = summary["grid"]
    fractions = ", ".join(f"{f:g}" for f in g["fractions"])
    grid = len(g["operations"]) * len(g["fractions"]) * len(g["seeds"]) * len(g["interventions"])
    makers = sorted({f"{m['backend']} on {m['device']}, {m['precision']}"
                     for m in (run.get("made_on") for run in summary["runs"].values()) if m})
    missing = _untrained(summary)
    return (f"{scale} scale: {what}; {len(summary['runs'])} of the grid's {grid} runs; "
            f"{g['model']} model, budget "
            f"{g['budget']:,} updates, seeds {g['seeds']},\ntraining fractions {fractions}; "
            f"trained with {'; '.join(makers) or 'unknown'}"
            + (f"\nNOT TRAINED YET (not drawn): {', '.join(missing)}" if missing else ""))


def fractions_figure(summary: dict, target: Path, scale: str) -> None:
    """Figure 1 (center): median updates to 99% validation and train accuracy per fraction."""
    frame = results.record_frame(summary)
    budget = summary["grid"]["budget"]
    fig, ax = plt.subplots(figsize=(7.5, 5))
    for column, colour, label in (("updates_to_99_val", "tab:green", "validation"), ("updates_to_99_train", "tab:red", "train")):
        by_fraction = frame.groupby("train_fraction")[column]
        median = by_fraction.median()
        reached = median[np.isfinite(median)]
        ax.plot(reached.index * 100, reached.values, "o-", color=colour, label=f"{label}: median over seeds")
        seeds = frame[np.isfinite(frame[column])]
        ax.scatter(seeds["train_fraction"] * 100, seeds[column], color=colour, alpha=0.35, s=14,
                   label=f"{label}: each seed")
        missed = frame[~np.isfinite(frame[column])]
        if len(missed):
            ax.scatter(missed["train_fraction"] * 100, np.full(len(missed), budget * 1.4), marker="^",
                       color=colour, alpha=0.6, label=f"{label}: not reached within {budget:,}")
    ax.axhline(budget, color="gray", linestyle=":", linewidth=1, label=f"budget ({budget:,} updates)")
    ax.set_yscale("log")
    ax.set_xlabel("training data (% of all equations)")
    ax.set_ylabel("updates until accuracy first reaches 99% (log scale)")
    operation = summary["grid"]["operations"][0]
    ax.set_title(f"Figure 1 (center): {operation}: time to generalize grows as data shrinks{_partial(summary)}")
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    _save(fig, target, _sweep_caption(summary, "dots: single seeds; lines: medians", scale))


def _accuracy_by_fraction(ax, frame: pd.DataFrame, key: str, labels: dict[str, str], styles: dict[str, str]) -> None:
    """One line per value of `key`: mean best validation accuracy over seeds, min-max band."""
    colours = plt.get_cmap("tab20" if len(labels) > 10 else "tab10")
    for i, (value, label) in enumerate(labels.items()):
        rows = frame[frame[key] == value].groupby("train_fraction")["best_val_accuracy"]
        mean, low, high = rows.mean(), rows.min(), rows.max()
        colour = colours(i)
        ax.plot(mean.index * 100, mean.values, marker="o", markersize=4, linestyle=styles.get(value, "-"),
                color=colour, label=label)
        if (high - low).max() > 0:
            ax.fill_between(mean.index * 100, low.values, high.values, color=colour, alpha=0.12)
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("training data (% of all equations)")
    ax.set_ylabel("best validation accuracy within the budget")
    ax.grid(True, alpha=0.3)


def interventions_figure(summary: dict, interventions: dict[str, dict], target: Path, scale: str) -> None:
    """Figure 2 (left): best validation accuracy against training fraction per intervention."""
    frame = results.record_frame(summary)
    labels = {}
    for name in (n for n in summary["grid"]["interventions"] if n in set(frame["intervention"])):
        changes = ", ".join(f"{k} {v}" for k, v in interventions.get(name, {}).items())
        labels[name] = f"{name.replace('_', ' ')}" + (f" ({changes})" if changes else " (sweep default)")
    fig, ax = plt.subplots(figsize=(12.5, 5.5))
    _accuracy_by_fraction(ax, frame, "intervention", labels, {})
    operation = summary["grid"]["operations"][0]
    fig.suptitle(f"Figure 2 (left): {operation}: which training choices generalize from less data{_partial(summary)}")
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    _save(fig, target, _sweep_caption(summary, "mean over seeds; band: min-max", scale))


def operations_figure(summary: dict, operations: dict, target: Path, scale: str) -> None:
    """Figure 2 (right): best validation accuracy against training fraction per operation."""
    frame = results.record_frame(summary)
    names = [op for op in summary["grid"]["operations"] if op in set(frame["operation"])]
    labels = {op: operations[op].formula + (" (symmetric)" if operations[op].symmetric else "") for op in names}
    styles = {op: "-" if operations[op].symmetric else "--" for op in names}
    fig, ax = plt.subplots(figsize=(9.5, 5.5))
    _accuracy_by_fraction(ax, frame, "operation", labels, styles)
    ax.set_title(f"Figure 2 (right): data needed to generalize, per operation{_partial(summary)}")
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5), title="solid: symmetric", title_fontsize=7)
    _save(fig, target, _sweep_caption(summary, "mean over seeds; band: min-max", scale))


# --- Figure 3: embeddings -----------------------------------------------------


def embeddings_figure(s5: dict, additions: list[dict], target: Path) -> None:
    """t-SNE maps: S5 coloured by coset; x + y coloured by residue mod 8, with the +8 line."""
    fig, axes = plt.subplots(1, 3, figsize=(17, 5.6))
    ax = axes[0]
    points, labels = s5["points"], s5["labels"]
    ax.scatter(points[:, 0], points[:, 1], c=labels, cmap="tab20" if labels.max() < 20 else "nipy_spectral", s=22)
    ax.set_title(f"{s5['title']}\ncolour = {s5['side']} coset of the best of all subgroups (ANOVA F): "
                 f"order {s5['order']}, {labels.max() + 1} cosets, score {s5['score']:.2f}", fontsize=9)
    ax.scatter([], [], color="gray", s=22, label="one answer symbol (permutation)")
    ax.legend(fontsize=7, loc="lower right")
    for ax, panel in zip(axes[1:], additions):
        points = panel["points"]
        n = len(points)
        for k in range(n):
            after = (k + 8) % n
            ax.plot(points[[k, after], 0], points[[k, after], 1], color="lightgray", linewidth=0.6, zorder=1)
        scatter = ax.scatter(points[:, 0], points[:, 1], c=np.arange(n) % 8, cmap="tab10", s=22, zorder=2)
        ax.plot([], [], color="lightgray", label="k → k + 8")
        ax.legend(*scatter.legend_elements(), title="k mod 8", fontsize=7, title_fontsize=7, loc="lower right")
        ax.add_artist(ax.get_legend())
        ax.legend(loc="upper right", fontsize=7)
        ax.set_title(f"{panel['title']}\nnearest neighbour is k ± {panel['step']} for {panel['share']:.0%} of symbols",
                     fontsize=9)
    for ax in axes:
        ax.set_xlabel("t-SNE dimension 1")
        ax.set_ylabel("t-SNE dimension 2")
    fig.suptitle("Figure 3: t-SNE of the output layer's rows (one point per answer symbol)")
    _save(fig, target, "\n".join([s5["caption"], *(p["caption"] for p in additions)]))


# --- Figure 5: progress measures ----------------------------------------------

_PHASES = (("memorization", None, "memorization_ends", "tab:orange"),
           ("circuit formation", "memorization_ends", "circuit_formation_ends", "tab:blue"),
           ("cleanup", "circuit_formation_ends", "cleanup_ends", "tab:purple"))


def _shade_phases(ax, frame: pd.DataFrame, phases: dict, label: bool) -> None:
    """Each phase the rule places, as a band from its start to its end (the last logged update if it has none)."""
    first, last = int(frame["update"].iloc[1]), int(frame["update"].iloc[-1])
    for name, start, end, colour in _PHASES:
        begin = first if start is None else phases[start]
        if begin is None:
            continue
        finish = last if phases[end] is None else phases[end]
        if finish > begin:
            ax.axvspan(begin, finish, color=colour, alpha=0.08, label=f"{name} (rule)" if label else None)


def progress_figure(runs: list[tuple[pd.DataFrame, dict]], target: Path, scale: str) -> None:
    """One column per run: the four losses (top), the weight norm and the Gini coefficient (bottom)."""
    fig, axes = plt.subplots(2, len(runs), figsize=(6.5 * len(runs), 8), squeeze=False)
    for column, (frame, summary) in enumerate(runs):
        shown = frame[frame["update"] > 0]
        top, bottom = axes[0][column], axes[1][column]
        for key, colour, label in (("train_loss", "tab:red", "training loss"),
                                   ("val_loss", "tab:green", "validation loss"),
                                   ("restricted_loss", "tab:blue", "restricted loss (key frequencies only)"),
                                   ("excluded_loss", "tab:purple", "excluded loss (training, key frequencies removed)")):
            top.plot(shown["update"], shown[key], color=colour, label=label)
        top.set_yscale("log")
        top.set_ylabel("cross-entropy loss")
        key = summary["key_frequencies"]
        title = _panel_title(summary["record"]).replace("\n", ", ")
        top.set_title(f"{title}\n{len(key)} key frequencies of "
                      f"{len(shown.filter(like='share_').columns)} ({summary['key_share']:.0%} of the logits' energy)",
                      fontsize=9)
        bottom.plot(shown["update"], shown["weight_norm"], color="black", label="weight norm")
        bottom.set_ylabel("weight norm (L2, all weights)")
        gini_axis = bottom.twinx()
        gini_axis.plot(shown["update"], shown["gini"], color="tab:brown", linestyle="--",
                       label="Gini of the first layer's Fourier norms")
        gini_axis.set_ylabel("Gini coefficient")
        gini_axis.set_ylim(0, 1)
        for ax in (top, bottom):
            _shade_phases(ax, frame, summary["phases"], label=ax is top)
            ax.set_xscale("log")
            ax.grid(True, which="major", alpha=0.3)
        bottom.set_xlabel("optimisation updates (log scale)")
        top.legend(loc="lower left", fontsize=7)
        lines = bottom.get_legend_handles_labels(), gini_axis.get_legend_handles_labels()
        bottom.legend(lines[0][0] + lines[1][0], lines[0][1] + lines[1][1], loc="upper left", fontsize=7)
    fig.suptitle("Figure 5 (Nanda et al. 2023's measures): memorization, circuit formation, cleanup")
    captions = [_caption(summary["record"], scale) for _, summary in runs]
    _save(fig, target, "\n".join([*captions, *textwrap.wrap(runs[0][1]["phase_rule"], 160)]))


# --- the drawers the registry names (repro/files.py, FIGURES) -------------------


def _run(config, name: str) -> tuple[Path, object]:
    return RUNS_DIR / config.runs[name].directory, config.runs[name]


def draw_curves(config, out_dir: Path) -> list[Path]:
    return curve_figures([_run(config, name) for name in config.figures.curves], config.scale, out_dir)


def draw_table(config, out_dir: Path) -> list[Path]:
    from repro import datasets

    name = config.figures.table
    target = out_dir / files.figure_file("table")
    table_figure(datasets.load(DATA_DIR / name, config.datasets[name]), target)
    return [target]


def _sweep_summary(config, figure: str) -> dict:
    sweep = getattr(config.figures, figure)
    summary = results.read_metrics(RECORDS_DIR / f"{sweep}.json")
    results.missing_groups(summary, sweep)  # an older record, which cannot say what it lacks, is refused
    return summary


def draw_fractions(config, out_dir: Path) -> list[Path]:
    target = out_dir / files.figure_file("fractions")
    fractions_figure(_sweep_summary(config, "fractions"), target, config.scale)
    return [target]


def draw_interventions(config, out_dir: Path) -> list[Path]:
    target = out_dir / files.figure_file("interventions")
    interventions_figure(_sweep_summary(config, "interventions"), config.interventions, target, config.scale)
    return [target]


def draw_operations(config, out_dir: Path) -> list[Path]:
    from repro import tasks

    target = out_dir / files.figure_file("operations")
    operations_figure(_sweep_summary(config, "operations"), tasks.OPERATIONS, target, config.scale)
    return [target]


def draw_embeddings(config, out_dir: Path) -> list[Path]:
    """Figure 3 from records/embeddings.json (`repro embeddings` computes it) and the three runs' run.json."""
    path = RECORDS_DIR / "embeddings.json"
    record = results.read_metrics(path)
    s5_name, *add_names = config.figures.embeddings
    try:
        maps = record["tsne"]
        made_for = [record[key]["run"] for key in ("s5", "add_decay", "add_no_decay")]
    except (KeyError, TypeError):
        raise ConfigError(f"{path} holds no t-SNE maps (made by an older version?); remake it with "
                          f"`repro embeddings`") from None
    if made_for != [s5_name, *add_names]:
        raise ConfigError(f"{path} was made for other runs ({', '.join(made_for)}) than figures.embeddings "
                          f"({', '.join(config.figures.embeddings)}); remake it with `repro embeddings`")
    s5_record = run_folder.read(*_run(config, s5_name))
    s5 = {"points": np.asarray(maps["s5"]["points"]), "labels": np.asarray(maps["s5"]["labels"]),
          "side": record["s5"]["side"], "order": record["s5"]["subgroup_order"],
          "score": record["s5"]["coset_score"],
          "title": f"{_panel_title(s5_record).splitlines()[0]}: {maps['s5']['formula']}",
          "caption": _caption(s5_record, config.scale)}
    additions = []
    for key, name in zip(("add_decay", "add_no_decay"), add_names):
        run_record = run_folder.read(*_run(config, name))
        wd = run_record["run"]["training"]["weight_decay"]
        additions.append({
            "points": np.asarray(maps[key]["points"]), "step": record[key]["number_line_step"],
            "share": record[key]["number_line_share"], "caption": _caption(run_record, config.scale),
            "title": f"{run_record['dataset']['formula']}, " + (f"weight decay {wd:g}" if wd else "no weight decay"),
        })
    target = out_dir / files.figure_file("embeddings")
    embeddings_figure(s5, additions, target)
    return [target]


def draw_progress(config, out_dir: Path) -> list[Path]:
    from repro import progress

    if not config.figures.progress:
        raise ConfigError("figures.progress names no run; list Figure 5's runs there (from `progress`)")
    target = out_dir / files.figure_file("progress")
    progress_figure([progress.read(progress.FOLDER / run, run) for run in config.figures.progress], target,
                    config.scale)
    return [target]
