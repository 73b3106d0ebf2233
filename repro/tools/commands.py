"""The `repro` commands that are no stage of the pipeline: speed and plans (bench, estimate, savings, groups),
checks (verify, compare, trace), state (pack, unpack, adopt, trained, status), training on a cluster (submit)
and the files written from code (readme, pipeline, env).

They register on `repro.cli.main`, which loads this module only when one of them, or `repro --help`, is asked for:
so no stage's command imports it, and editing a tool reruns no stage (tests/test_dvc_deps.py).
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from repro.cli import main
from repro.stages import clear_errors as _clear_errors
from repro.stages import config_of as _config
from repro.config import ConfigError
from repro.files import CHECKPOINT_DIR, HISTORIES_DIR, RECORDS_DIR, REPORT_DIR


@main.command()
@click.argument("name")
@click.argument("target", type=click.Path(dir_okay=False, path_type=Path))
@click.pass_context
@_clear_errors
def pack(context: click.Context, name: str, target: Path) -> None:
    """Packs the in-flight state of NAME (a run, group or sweep stopped by `train --for` or Ctrl-C) into TARGET.

    One file: every shard's weights, optimiser moments, history so far and the update it is at. `repro
    unpack TARGET` on another machine or folder continues the run exactly where it was packed.
    """
    from repro import checkpoints

    groups = [group.name for group in _config(context).trained_by(name)]
    for member in checkpoints.pack(CHECKPOINT_DIR, groups, target, name):
        click.echo(f"packed {CHECKPOINT_DIR / member}")
    click.echo(f"{target}: the in-flight state of {name}")


@main.command()
@click.argument("name")
@click.option("--old-code", type=click.Path(exists=True, file_okay=False, path_type=Path), required=True,
              help="The checkout whose repro/ wrote the checkpoints (for example `git worktree add /tmp/old COMMIT`).")
@click.option("--updates", type=click.IntRange(min=1), default=512, show_default=True,
              help="Updates each code trains from every checkpoint before their states are compared.")
@click.pass_context
@_clear_errors
def adopt(context: click.Context, name: str, old_code: Path, updates: int) -> None:
    """Carries NAME's in-flight state (checkpoints/) across a change of the training code, if both codes continue
    it to the same bytes (repro/adopt.py); else changes nothing and exits non-zero."""
    from repro.tools import adopt as adopt_module

    adopt_module.adopt(_config(context), name, old_code, updates, click.echo, Path(context.obj))


@main.command()
@click.argument("source", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("name", required=False)
@click.option("--check", "check_only", is_flag=True,
              help="Read and check every member (and, with NAME, that it belongs to NAME); write nothing.")
@click.pass_context
@_clear_errors
def unpack(context: click.Context, source: Path, name: str | None, check_only: bool) -> None:
    """Puts the in-flight state packed in SOURCE (`repro pack`) under checkpoints/, to continue with `repro train`.

    With NAME, refuses a pack that holds other groups than NAME's. A checkpoint here that is further
    along is kept. `repro train` then resumes only if this machine's training code and library versions
    are the ones that made the state; otherwise it says so and starts over.
    """
    from repro import checkpoints

    groups = None if name is None else [group.name for group in _config(context).trained_by(name)]
    for member, outcome in checkpoints.unpack(source, CHECKPOINT_DIR, groups, check_only):
        click.echo(f"{CHECKPOINT_DIR / member}: {outcome}")


@main.command()
@_clear_errors
def readme() -> None:
    """Rewrites README.md's table of claim verdicts at both scales from reports/claims.json and
    paper/reports/claims.json (after `dvc repro`, or `paper/campaign.sh record`)."""
    import json

    from repro import files
    from repro.tools import readme as readme_module

    reports = [REPORT_DIR / "claims.json", Path("paper") / REPORT_DIR / "claims.json"]
    loaded = []
    for report_path in reports:
        if not report_path.is_file():
            raise ConfigError(f"{report_path} is missing; make it with `repro claims` (or `dvc repro`) in its folder")
        try:
            loaded.append(json.loads(report_path.read_text(encoding="utf-8")))
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise ConfigError(f"{report_path} is damaged ({type(error).__name__}: {error}); remake it with `repro "
                              f"claims` in its folder") from None
    path = Path("README.md")
    try:
        text = readme_module.with_table(path.read_text(encoding="utf-8"), *loaded)
    except (KeyError, TypeError, IndexError) as error:
        raise ConfigError(f"{' or '.join(map(str, reports))} is damaged ({type(error).__name__}: {error}); remake it "
                          f"with `repro claims` in its folder") from None
    except ValueError as error:
        raise ConfigError(str(error)) from error
    files.write_text(path, text)
    click.echo(f"{path}: claim verdicts from {' and '.join(map(str, reports))}")


def _device() -> str:
    from repro import backend

    return f"{backend.NAME} on {backend.accelerator()} ({', '.join(backend.devices())})"


@main.command()
@click.option("--updates", default=0, type=click.IntRange(min=0),
              help="Updates per timing (default: ~3 s worth on a CPU).")
@click.option("--repeats", default=3, show_default=True, type=click.IntRange(min=1),
              help="Timings per model and group size; the median is reported.")
@click.option("--model", "model_names", multiple=True, help="Models from params.yaml (default: all).")
@click.option("--runs", "sizes", multiple=True, type=click.IntRange(min=1),
              help="Group sizes to time (default: 1 2 8 on a CPU, 1 8 32 128 on a GPU).")
@click.option("--precision", type=click.Choice(["fp32", "tf32"]), default="fp32", show_default=True)
@click.pass_context
@_clear_errors
def bench(context: click.Context, updates: int, repeats: int, model_names: tuple[str, ...], sizes: tuple[int, ...],
          precision: str) -> None:
    """Prints training updates per second at batch 512: one run, and groups of runs trained together.

    Times the updates alone, batch drawing included and evaluation not (x / y
    mod 97, 50% training data, the paper's AdamW), after one call that compiles.
    A group's rate is all its runs' updates together.
    """
    from repro.tools import bench as bench_module

    config = _config(context)
    click.echo(f"device: {_device()}, precision {precision}")
    for name in model_names or tuple(config.models):
        if name not in config.models:
            raise ConfigError(f"no model named {name!r} in params.yaml; models: {', '.join(config.models)}")
        for size in sizes or bench_module.group_sizes():
            rate = bench_module.measure(config.models[name], size, updates, repeats, precision)
            click.echo(f"{name}, {size} run(s): {rate.median:,.1f} updates/s in all, {rate.median / size:,.1f} per run "
                       f"(median of {rate.repeats} x {rate.updates} updates; range {rate.low:,.1f}-{rate.high:,.1f})")


@main.command()
@click.option("--groups", "per_group", is_flag=True, help="Also print every group's minutes.")
@click.option("--save", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write every group's seconds, with the device and rates measured, to this JSON file "
                   "(for `repro groups --lease`).")
@click.option("--rates", "given", multiple=True, metavar="KIND:RUNS=RATE,…",
              help="Rates measured elsewhere instead of measuring here, for example transformer:1=2100,24=5300 "
                   "(updates/s of groups of that many runs, all together); once per model kind.")
@click.pass_context
@_clear_errors
def estimate(context: click.Context, per_group: bool, save: Path | None, given: tuple[str, ...]) -> None:
    """Estimates the training time of every group in params.yaml from this machine's `repro bench`.

    Each group trains at the rate measured for its size, or interpolated
    between the sizes measured (bench.rate_for). A full-batch update is counted as (training set / 512)
    batch-512 updates. Start-up and evaluation are left out.
    """
    from repro.tools import bench as bench_module

    config = _config(context)
    kinds = sorted({run.model.kind for run in config.runs.values()})
    models = {m.kind: m for m in config.models.values()}
    if given:
        rates, device = bench_module.parse_rates(given, kinds), f"rates given: {' '.join(given)}"
    else:
        rates = {kind: {size: bench_module.measure(models[kind], size).median for size in bench_module.group_sizes()}
                 for kind in kinds}
        device = _device()
    click.echo(f"device: {device}")
    for kind, by_size in rates.items():
        click.echo(f"measured {kind}: " + ", ".join(f"{size} run(s) {r:,.1f} updates/s" for size, r in by_size.items()))
    groups = bench_module.estimate(config, rates)
    for name, g in groups.items():
        click.echo(f"{name}: {g['runs']} run(s) in {g['groups']} group(s), {g['updates']:,} updates, {g['hours']:,.2f} h")
    total = sum(g["hours"] for g in groups.values())
    click.echo(f"total ({config.scale} scale): {sum(g['runs'] for g in groups.values())} runs, "
               f"{total:,.2f} h on one such machine ({total / 24:,.1f} days)")
    seconds = bench_module.group_seconds(config, rates)
    if per_group:
        for name in bench_module.figure_order(config):
            click.echo(f"  {name}: {len(config.groups[name].members)} run(s), {seconds[name] / 60:,.1f} min")
    if save is not None:
        bench_module.save_estimate(save, config, device, rates, seconds)
        click.echo(f"{save}: every group's seconds on this device")


@main.command()
@click.option("--stop-after", type=click.IntRange(min=1), default=None,
              help="The rule's log points for every run, sweeps and named runs, instead of each run's own "
                   "stop_after.")
@click.pass_context
@_clear_errors
def savings(context: click.Context, stop_after: int | None) -> None:
    """What the stopping rule (a run's stop_after) saves, read from the committed histories under histories/.

    Per sweep: the runs it stops before their budget, and the training work (in batch-512 updates) that
    leaves out. Measures nothing: it reads where each committed history reaches the rule.
    """
    from repro.tools import bench as bench_module

    found = bench_module.savings(_config(context), HISTORIES_DIR, RECORDS_DIR, stop_after)
    for s in found:
        if not s.read:
            click.echo(f"{s.name}: no whole history committed yet ({s.runs} run(s))")
            continue
        click.echo(f"{s.name}: {s.stopping} of {s.read} run(s) stop early{'' if s.read == s.runs else f' ({s.runs - s.read} not trained, or not to the end)'}; "
                   f"{s.fraction:.1%} of their work saved ({s.saved:,.0f} of {s.work:,.0f} batch-512 updates)")
    work, saved = sum(s.work for s in found), sum(s.saved for s in found)
    click.echo(f"in all: {saved / work if work else 0:.1%} of the work read saved")


@main.command()
@click.argument("names", nargs=-1)
@click.option("--all", "every", is_flag=True, help="Every run in params.yaml (the laptop scale: ~40 minutes here).")
@click.pass_context
@_clear_errors
def verify(context: click.Context, names: tuple[str, ...], every: bool) -> None:
    """Retrains runs NAMES (runs or whole sweeps) in a scratch folder and compares them with the committed results.

    Compares with the results committed at git's HEAD (records/), and says which machine made them.
    Exit status: 0 bit-identical, 10 different bytes but every metric within
    tolerance, 11 a metric beyond tolerance, 12 the committed result has other
    parameters than params.yaml (1: bad input).
    """
    from repro.tools import verify as verify_module

    config = _config(context)
    if every:
        names = tuple(config.runs)
    if not names:
        raise ConfigError("name the runs or sweeps to verify (e.g. `repro verify mlp_add`), or pass --all")
    expanded = [m for n in names for m in (config.sweeps[n].members if n in config.sweeps else [config.run(n).name])]
    outcomes = []
    for outcome in verify_module.verify(config, context.obj, expanded):
        name = outcome.name
        outcomes.append(outcome)
        click.echo(f"{name}: {outcome.verdict}")
        if outcome.made_on:
            m = outcome.made_on
            click.echo(f"  committed result made with {m['backend']} on {m['device']} ({m['precision']}), "
                       f"CPU {m['cpu']} ({' '.join(m.get('vector_extensions') or ['vector units not recorded'])}), "
                       f"{m['logical_cores']} cores, commit {str(m['commit'])[:10]}")
        if outcome.verdict == verify_module.OTHER_PARAMETERS:
            click.echo("  the committed result was made with other parameters than params.yaml's; nothing to "
                       "compare: check out the params.yaml that made it, or rerun and commit the results")
        if outcome.files:
            click.echo(f"  bytes differ in {', '.join(outcome.files)}; largest differences per metric:")
        for metric, (old, new, difference, tolerance) in outcome.differences.items():
            mark = "ok" if difference <= tolerance else "BEYOND"
            click.echo(f"  {metric}: committed {old}, fresh {new}, difference {difference:.4g} "
                       f"(tolerance {tolerance:g}) {mark}")
    verdict = verify_module.overall(outcomes)
    click.echo(f"verify: {len(outcomes)} run(s): {verdict}")
    context.exit(verify_module.EXIT_CODES[verdict])


@main.command("trace")
@click.option("--case", "cases", multiple=True, type=click.Choice(["mlp", "transformer"]),
              help="Trace these cases only (default: both).")
@click.option("--write", is_flag=True,
              help="Also write this trace as its CPU kind's fixture, tests/cpu_traces/KIND.json, to commit.")
@_clear_errors
def trace_command(cases: tuple[str, ...], write: bool) -> None:
    """Finds where this CPU's bytes part from other CPU kinds': the first steps of mlp_add's and
    transformer_div's settings, operation by operation, against every committed trace (tests/cpu_traces/).

    A trace made with a setting that changes bytes (ONEDNN_MAX_CPU_ISA, XLA_FLAGS, TF_NUM_INTRAOP_THREADS, …)
    is named after it: KIND+SETTING.json. Exit status 1 when the committed trace of this CPU kind and these
    settings differs from this machine's.
    """
    from repro.tools import trace

    found = trace.collect(cases or tuple(trace.CASES))
    click.echo(f"this CPU: {found['kind']} ({found['cpu'].get('model')}, caches "
               f"{', '.join(f'{k} {v}' for k, v in found['cpu']['caches'].items()) or 'unknown'})"
               + (f"; set: {found['environment']}" if found["environment"] else ""))
    own_differs = False
    for path in sorted(trace.FIXTURES.glob("*.json")):
        try:
            theirs = trace.load(path)
            differences = trace.compare(found, theirs)
        except ValueError as error:
            raise click.ClickException(str(error)) from None
        own = trace.name(theirs) == trace.name(found)
        click.echo(f"against {path.name} ({theirs['cpu'].get('model')}{', this kind and settings' if own else ''}):")
        click.echo("\n".join(trace.describe(differences)))
        own_differs |= own and any(d.first for d in differences)
    if write:
        click.echo(f"wrote {trace.write(found)}")
    sys.exit(1 if own_differs else 0)


@main.command()
@click.option("--against", "revision", default="HEAD", show_default=True,
              help="The git revision whose committed results to compare with.")
@_clear_errors
def compare(revision: str) -> None:
    """Compares the results here (after `dvc repro` on this machine) with those committed at REVISION.

    Says which files are byte-identical, the largest difference of every logged
    quantity and metric, and, above all, whether any claim's verdict changed.
    Exit status: 0 bit-identical, 10 different bytes but the same verdicts, 11
    a verdict differs (1: bad input).
    """
    from repro.tools import compare as compare_module

    result = compare_module.compare(Path.cwd(), revision)
    click.echo(f"compared with {revision}: {len(result.identical)} files bit-identical, {len(result.different)} "
               f"differ, {len(result.only_committed)} only committed, {len(result.only_here)} only here")
    for path in result.different:
        click.echo(f"  differs: {path}")
    for path in result.only_committed:
        click.echo(f"  only committed: {path}")
    for path in result.only_here:
        click.echo(f"  only here: {path}")
    if result.largest:
        click.echo("largest differences:")
    for quantity, (difference, where) in sorted(result.largest.items()):
        click.echo(f"  {quantity}: {difference:.3g} ({where})")
    changed = result.changed_verdicts
    click.echo(f"verdicts: {len(result.verdicts) - len(changed)} of {len(result.verdicts)} the same")
    for claim, (before, after) in changed.items():
        click.echo(f"  {claim}: committed {before or 'absent'}, here {after or 'absent'}")
    click.echo(f"compare: {result.outcome}")
    sys.exit(compare_module.EXIT_CODES[result.outcome])


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON, as stored in each run's provenance.json.")
def env(as_json: bool) -> None:
    """Prints the provenance that every run records: versions, TensorFlow build, CPU, threads, git commit."""
    import json

    from repro import provenance

    found = provenance.environment()
    if as_json:
        click.echo(json.dumps(found, indent=2, sort_keys=True))
        return
    def lines(data, indent=""):
        for key, value in data.items():
            if isinstance(value, dict):
                click.echo(f"{indent}{key}:")
                lines(value, indent + "  ")
            else:
                click.echo(f"{indent}{key}: {', '.join(map(str, value)) if isinstance(value, list) else value}")
    lines(found)


@main.command()
@click.option("--lease", type=click.FloatRange(min=1), default=None, metavar="SECONDS",
              help="Pack the groups into leases of this many seconds (needs --estimate): one lease a line.")
@click.option("--estimate", "estimate_path", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              default=None, help="A `repro estimate --save` file: every group's seconds on the lent device.")
@click.option("--skip-trained", is_flag=True,
              help="With --lease: leave out the groups runs/ holds whole here (`repro trained --groups`).")
@click.option("--sizes", "sizes_of", is_flag=True,
              help="Print, for the groups NAMES, one `--runs N` option per run count among them (for `repro "
                   "bench`: the shapes a lease trains).")
@click.argument("names", nargs=-1)
@click.pass_context
@_clear_errors
def groups(context: click.Context, lease: float | None, estimate_path: Path | None, skip_trained: bool,
           sizes_of: bool, names: tuple[str, ...]) -> None:
    """Prints every group's name, one a line, in the order of the figures.

    Figure 1 (center) seed by seed, Figure 2 (left), Figure 2 (right), then
    the named runs of Figure 1 (left) with Figure 4 and of Figure 3, then any
    other group: the order in which to train a scale when time is short
    (`paper/run-gpu.sh` follows it; bench.figure_order). In a sweep,
    full-batch groups (one per fraction and seed, the costliest) come last.
    With --lease and --estimate, packs them into leases of that many seconds,
    first fit in that order, one lease a line.
    """
    from repro.tools import bench as bench_module

    config = _config(context)
    ordered = bench_module.figure_order(config)
    if names and not sizes_of:
        raise ConfigError("group names are read only with --sizes")
    if sizes_of:
        click.echo(" ".join(f"--runs {n}" for n in bench_module.run_counts(config, list(names))))
        return
    if lease is None:
        for name in ordered:
            click.echo(name)
        return
    if estimate_path is None:
        raise ConfigError("--lease needs --estimate FILE, every group's seconds (`repro estimate --save FILE` on "
                          "the device the leases lend)")
    seconds = bench_module.read_estimate(estimate_path, ordered)
    from repro.tools import status as status_module

    if skip_trained:
        ordered = [name for name in ordered if not status_module.complete(config, name)]
    for number, packed in enumerate(bench_module.leases(ordered, seconds, lease), start=1):
        used = sum(seconds[name] for name in packed)
        note = ", longer than a lease, resumed across leases" if used > lease else ""
        click.echo(f"lease {number} ({used:,.0f} of {lease:,.0f} s{note}): {' '.join(packed)}")


@main.command()
@click.option("--stages", "stages_only", is_flag=True,
              help="Print only the DVC stages to record, one a line (for `dvc commit -f`): those whose groups are "
                   "all trained.")
@click.option("--partial", is_flag=True,
              help="Also record a sweep trained in part (its folder under runs/ holding whole groups only), and a "
                   "named run stopped before its budget (`repro train --for`): figures and claims then say what is "
                   "not trained yet.")
@click.option("--groups", "groups_only", is_flag=True,
              help="Print only the groups trained here, one a line: those no lease needs to train.")
@click.pass_context
@_clear_errors
def trained(context: click.Context, stages_only: bool, partial: bool, groups_only: bool) -> None:
    """Says which DVC training stages runs/ holds whole, in part, or not at all.

    For results trained elsewhere (`paper/device.sh unpack`): a stage whose
    groups are all here, each run made with params.yaml's parameters, can be
    recorded in DVC with `dvc commit -f STAGE` instead of being trained again.
    """
    from repro.tools import status as status_module

    recorded, done_groups = [], []
    for state in status_module.stage_states(_config(context)):
        done_groups += state.done
        if state.recordable(partial):
            recorded.append(state.stage)
        if not (stages_only or groups_only):
            click.echo(f"{state.stage}: {state.describe()}")
    if groups_only:
        click.echo("\n".join(done_groups))
    elif stages_only:
        click.echo("\n".join(recorded))
    elif recorded:
        # The tables are a dependency of every training stage: recorded with them (`repro generate` makes them).
        click.echo(f"record the {'complete and partial' if partial else 'complete'} ones in DVC, in this folder: "
                   f"dvc commit -f generate {' '.join(recorded)}")


@main.command()
@click.option("--write", "target", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the page to this file (paper/campaign.sh record writes STATUS.md) instead of printing it.")
@click.option("--title", default="Training status", show_default=True, help="The page's heading.")
@click.pass_context
@_clear_errors
def status(context: click.Context, target: Path | None, title: str) -> None:
    """A page of where every training stage stands, and each named run's slices, hours and CPUs."""
    from repro import files
    from repro.tools import status as status_module

    text = status_module.page(_config(context), title)
    if target is None:
        click.echo(text, nl=False)
    else:
        files.write_text(target, text)
        click.echo(f"{target}: the training status")


@main.command()
@_clear_errors
def pipeline() -> None:
    """Rewrites every stage's code dependencies in dvc.yaml from the imports, then paper/dvc.yaml from dvc.yaml
    (run in the repository's root after editing dvc.yaml or changing what a stage imports)."""
    from repro import files
    from repro.tools import pipelines

    laptop, paper = Path("dvc.yaml"), Path("paper") / "dvc.yaml"
    if not laptop.is_file() or not paper.parent.is_dir():
        raise ConfigError("run `repro pipeline` in the repository's root (it needs dvc.yaml and paper/)")
    try:
        text = pipelines.with_code_deps(laptop.read_text(encoding="utf-8"))
        files.write_text(laptop, text)
        files.write_text(paper, pipelines.paper_pipeline(text))
    except ValueError as error:
        raise ConfigError(str(error)) from None
    click.echo(f"{laptop}: code dependencies from the imports; {paper}: written from {laptop}")


@main.command()
@click.argument("names", nargs=-1)
@click.option("--executor", type=click.Choice(["slurm", "local"]), default=None,
              help="slurm: one sbatch job array (the default where sbatch is on PATH); local: the same tasks here, "
                   "one after another.")
@click.option("--time", "time_limit", default="1-00:00:00", show_default=True,
              help="Each task's time limit (Slurm's format); before it, the task checkpoints and is requeued.")
@click.option("--warning", type=click.IntRange(min=1), default=120, show_default=True, metavar="SECONDS",
              help="How long before its time limit a task is told to checkpoint (sbatch --signal=B:USR1@SECONDS).")
@click.option("--gpus", type=click.IntRange(min=0), default=0, show_default=True,
              help="GPUs per task (--gres=gpu:N); run from setup-gpu.sh's environment with KERAS_BACKEND=jax.")
@click.option("--cpus", type=click.IntRange(min=1), default=2, show_default=True, help="CPUs per task.")
@click.option("--sbatch", "extra", multiple=True, metavar="OPTION",
              help="Another sbatch option, as written (--sbatch=--partition=gpu --sbatch=--account=me).")
@click.pass_context
@_clear_errors
def submit(context: click.Context, names: tuple[str, ...], executor: str | None, time_limit: str, warning: int,
           gpus: int, cpus: int, extra: tuple[str, ...]) -> None:
    """Trains every group not yet trained (or those of NAMES: runs, groups, sweeps) as one job array, a task per
    group, each resuming every cut (docs/cluster.md). Run it where params.yaml is (paper/ for the paper scale);
    record what comes back with `paper/campaign.sh record`."""
    from repro.tools import submit as submit_module

    config = _config(context)
    executor = executor or ("slurm" if submit_module.slurm_available() else "local")
    seconds = submit_module.seconds_of(time_limit)
    if seconds <= warning:
        raise ConfigError(f"--time {time_limit} leaves no time to train: a task is warned {warning} s before its "
                          f"limit (--warning)")
    groups = submit_module.pending(config, names)
    folder = submit_module.prepare(config, groups, Path(context.obj))
    if executor == "slurm":
        done = submit_module.submit_slurm(folder, groups, time_limit, warning, gpus, cpus, extra)
        click.echo(f"{folder}: job {done.job_id}, {len(groups)} task(s), logs in {folder}/logs/; "
                   f"watch with `squeue -j {done.job_id}`")
        return
    failed = submit_module.run_locally(folder, groups, seconds, warning, click.echo).failed
    click.echo(f"{folder}: {len(groups) - len(failed)} of {len(groups)} group(s) trained here"
               + (f"; failed: {', '.join(failed)} (logs in {folder}/logs/)" if failed else ""))
    if failed:
        context.exit(1)
