"""`repro trace`: the bytes of a run's first steps, operation by operation, to find where two CPU kinds part.

Results reproduce bit for bit on one kind of CPU, not across kinds (docs/exactness.md). To find the first
operation whose bytes differ, each kind keeps a small fixture, `tests/cpu_traces/<kind>.json` (a few kB:
hashes, not tensors), and whoever works on another kind runs `repro trace` to compare theirs with every
committed one. A trace has, for two cases (`mlp_add`'s and `transformer_div`'s settings):

- **forward**: every operation of the model's functional graph at the initial weights, on the whole table
  (one compiled program returning every intermediate), in an order that puts each input before its use;
  then the per-example cross-entropy of its logits;
- **step**: the first update's loss, each gradient and AdamW's new weights, moments and velocities, on the
  first minibatch, from the initial weights;
- **updates**: the training program's whole state (weights, moments, velocities) after each of the first
  updates, and its evaluation there (the five numbers of a history row, as float32 bits).

Each entry holds the SHA-256 of the array's bytes, its sum and its sum of magnitudes in float64. The comparison names the first
entry that differs, and says whether its inputs were identical: if they were, that operation itself
computes differently on the two CPUs.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from repro import files, provenance
from repro.config import DatasetConfig, ModelConfig, RunConfig, TrainingConfig

FIXTURES = Path(__file__).resolve().parents[2] / "tests" / "cpu_traces"
UPDATES = 12  # the training program's state is hashed after each of these
# Settings that change these bytes on one machine (docs/exactness.md), recorded in a trace when set.
KNOBS = ("ONEDNN_MAX_CPU_ISA", "XLA_FLAGS", "TF_NUM_INTRAOP_THREADS", "TENSORFLOW_USE_CUSTOM_CONTRACTION_KERNEL")

# mlp_add's and transformer_div's settings (params.yaml), fixed here so that a fixture never depends on it.
CASES = {
    "mlp": (DatasetConfig("add", 97, 0.5, 0), ModelConfig("mlp"), TrainingConfig(learning_rate=0.01)),
    "transformer": (DatasetConfig("div", 97, 0.5, 0), ModelConfig("transformer"), TrainingConfig()),
}


def cpu_kind() -> str:
    """"<vendor>-<widest vector extension>", e.g. amd-avx2, amd-avx512, intel-avx512: what decides the bytes,
    as far as we know (docs/exactness.md); `provenance.cpu()` has the details."""
    info = provenance.cpu()
    vendor = "cpu"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        ids = [line.split(":", 1)[1].strip() for line in cpuinfo.read_text(errors="replace").splitlines()
               if line.startswith("vendor_id")]
        vendor = {"GenuineIntel": "intel", "AuthenticAMD": "amd"}.get(ids[0], ids[0]) if ids else vendor
    extensions = set(info.get("vector_extensions", []))
    widest = next((x for x in ("avx512f", "avx2", "avx") if x in extensions), "base")
    return f"{vendor.lower()}-{widest.replace('avx512f', 'avx512')}"


def caches() -> dict[str, str]:
    """The first core's cache sizes as the kernel reports them: Eigen sizes its matrix-product blocks by them."""
    found = {}
    for index in sorted(Path("/sys/devices/system/cpu/cpu0/cache").glob("index*")):
        try:
            level, kind = (index / "level").read_text().strip(), (index / "type").read_text().strip()
            found[f"L{level}{'d' if kind == 'Data' else 'i' if kind == 'Instruction' else ''}"] = \
                (index / "size").read_text().strip()
        except OSError:
            continue
    return found


def _entry(label: str, operation: str, inputs: list[str], array) -> dict:
    array = np.ascontiguousarray(np.asarray(array))
    return {"name": label, "op": operation, "inputs": inputs, "shape": list(array.shape), "dtype": str(array.dtype),
            "sha256": hashlib.sha256(array.tobytes()).hexdigest()[:16],
            "sum": float(array.astype(np.float64).sum()), "abs": float(np.abs(array.astype(np.float64)).sum())}


def _graph(model) -> list[tuple[str, str, list[str], object]]:
    """(label, operation type, input labels, symbolic tensor) for every node of a functional model, each after its
    inputs. A layer called more than once (the transformer's shared blocks) labels its calls name#0, name#1, …"""
    labels: dict[int, str] = {}
    pending = [(op, i, node) for op in model.operations for i, node in enumerate(op._inbound_nodes)]
    ordered = []
    while pending:
        rest = []
        for op, i, node in pending:
            if not all(id(t) in labels for t in node.input_tensors):
                rest.append((op, i, node))
                continue
            inputs = [labels[id(t)] for t in node.input_tensors]
            for k, tensor in enumerate(node.output_tensors):
                label = op.name + (f"#{i}" if len(op._inbound_nodes) > 1 else "") + (f".{k}" if k else "")
                labels[id(tensor)] = label
                ordered.append((label, type(op).__name__, inputs, tensor))
        if len(rest) == len(pending):
            raise RuntimeError(f"trace: the model's graph has nodes whose inputs never come: {rest[:3]}")
        pending = rest
    return ordered


def collect(cases: tuple[str, ...] = tuple(CASES), updates: int = UPDATES) -> dict:
    """This machine's trace of `cases` (see the module's docstring)."""
    import keras
    from keras import ops

    from repro import backend, datasets, models, train

    found = {"kind": cpu_kind(), "cpu": {**provenance.cpu(), "caches": caches()}, "versions": provenance.packages(),
             "backend": backend.NAME, "environment": {k: os.environ[k] for k in KNOBS if k in os.environ},
             "cases": {}}
    for case in cases:
        dataset_config, model_config, training = CASES[case]
        run = RunConfig(f"trace_{case}", None, dataset_config, model_config, training)
        dataset = datasets.make(dataset_config)
        trainer = train.GroupTrainer([run], [dataset])
        shard = trainer.shards[0]
        program = shard.program
        params = [p[0] for p in shard.state["params"]]
        x, y = shard.table

        # forward: every node of the graph, at the initial weights, on the whole table
        nodes = _graph(program.model)
        probe = keras.Model(program.model.inputs, [tensor for *_, tensor in nodes])
        values = backend.compile(lambda p, x: probe.stateless_call(p, [], x, training=False)[0])(params, x)
        entries = [_entry(label, op, inputs, ops.convert_to_numpy(value))
                   for (label, op, inputs, _), value in zip(nodes, values)]
        logits = models.answer_logits(values[-1])
        loss = backend.compile(train._cross_entropy)(y, logits)
        entries.append(_entry("cross_entropy", "cross_entropy", [nodes[-1][0]], ops.convert_to_numpy(loss)))

        # step: the first update's loss, gradients and AdamW, on the first minibatch
        rows = ops.convert_to_tensor(shard.batches.take(0, 1, shard.width, 1)[0, 0])
        hyper = {k: v[0] for k, v in shard.hyper.items()}

        def step(params, x, y, rows):
            def loss_of(at):
                logits = program._logits(at, ops.take(x, rows, axis=0), True)
                return ops.mean(train._loss(ops.take(y, rows, axis=0), logits)), None

            (loss, _), grads = backend.value_and_grad(loss_of)(params)
            zeros = [ops.zeros_like(p) for p in params]
            return loss, grads, train.adamw(params, grads, zeros, zeros, None, 0, hyper)

        loss, grads, (new, moments, velocities) = backend.compile(step)(params, x, y, rows)
        names = [v.path for v in program.model.trainable_variables]
        steps = [_entry("loss", "loss", ["minibatch"], ops.convert_to_numpy(loss))]
        for kind, arrays in (("gradient", grads), ("weight", new), ("moment", moments), ("velocity", velocities)):
            steps += [_entry(f"{kind}:{name}", kind, ["loss"], ops.convert_to_numpy(a)) for name, a in zip(names, arrays)]

        # updates: the training program's own state and evaluation after each update
        history = []
        for update in range(updates + 1):
            if update:
                trainer.train_updates(update - 1, update)
            state = b"".join(a.tobytes() for a in shard.state_arrays())
            evaluation = shard.evaluate()[0].astype(np.float32)  # the program's float32 numbers
            history.append({"update": update, "state": hashlib.sha256(state).hexdigest()[:16],
                            "evaluation": [float(v).hex() for v in evaluation]})
        found["cases"][case] = {"forward": entries, "step": steps, "updates": history}
    return found


@dataclass(frozen=True)
class Difference:
    case: str
    part: str
    first: str  # the first entry (or update) that differs; "" when the part is identical
    inputs_identical: bool | None  # whether that entry's inputs had the same bytes on both (None: not known)
    differing: int  # how many entries differ
    total: int
    relative: float  # the largest difference of an entry's sums, relative to its sum of magnitudes


def compare(ours: dict, theirs: dict) -> list[Difference]:
    """Where two traces part, case by case and part by part (cases in one only are left out)."""
    found = []
    for case in sorted(set(ours["cases"]) & set(theirs["cases"])):
        a, b = ours["cases"][case], theirs["cases"][case]
        for part in ("forward", "step"):
            mine = {e["name"]: e for e in a[part]}
            other = {e["name"]: e for e in b[part]}
            names = [e["name"] for e in a[part] if e["name"] in other]
            if len(names) != len(a[part]) or len(names) != len(b[part]):
                raise ValueError(f"trace: the {case} {part} entries differ in name; were the traces made by "
                                 f"different code? Make both with this code (`repro trace`).")
            same = {n for n in names if mine[n]["sha256"] == other[n]["sha256"]}
            differ = [n for n in names if n not in same]
            relative = max((abs(mine[n]["sum"] - other[n]["sum"]) / max(other[n]["abs"], 1e-30)
                            for n in differ), default=0.0)
            first, identical = "", None
            if differ:
                first = differ[0]
                inputs = [i for i in mine[first]["inputs"] if i in mine]
                identical = all(i in same for i in inputs) if inputs else None
            found.append(Difference(case, part, first, identical, len(differ), len(names), relative))
        steps = list(zip(a["updates"], b["updates"]))
        differ = [x["update"] for x, y in steps if x["state"] != y["state"] or x["evaluation"] != y["evaluation"]]
        state = next((x["update"] for x, y in steps if x["state"] != y["state"]), None)
        relative = max((abs(float.fromhex(p) - float.fromhex(q)) / max(abs(float.fromhex(q)), 1e-30)
                        for x, y in steps for p, q in zip(x["evaluation"], y["evaluation"])), default=0.0)
        first = "" if not differ else (f"update {differ[0]} (state "
                                       + ("identical there)" if state != differ[0] else "differs)"))
        found.append(Difference(case, "updates", first, None, len(differ), len(steps), relative))
    return found


def describe(differences: list[Difference]) -> list[str]:
    lines = []
    for d in differences:
        if not d.first:
            lines.append(f"  {d.case} {d.part}: identical ({d.total} entries)")
            continue
        why = {True: "; its inputs are identical: this operation computes differently",
               False: "; its inputs differ already", None: ""}[d.inputs_identical]
        size = (f"evaluations differ by up to {d.relative:.1e} (relative)" if d.part == "updates"
                else f"sums differ by up to {d.relative:.1e} of their magnitudes")
        lines.append(f"  {d.case} {d.part}: {d.differing} of {d.total} differ, first {d.first}{why}; {size}")
    return lines


def name(trace: dict) -> str:
    """A trace's fixture name: its CPU kind, then any setting of KNOBS it was made under
    (intel-avx512+ONEDNN_MAX_CPU_ISA=AVX2 for a trace made with oneDNN capped at AVX2)."""
    return "+".join([trace["kind"], *(f"{k}={v}".replace(" ", "_").replace("/", "_")
                                      for k, v in sorted(trace.get("environment", {}).items()))])


def fixture_path(label: str, folder: Path | None = None) -> Path:
    return (FIXTURES if folder is None else folder) / f"{label}.json"


def load(path: Path) -> dict:
    try:
        data = json.loads(Path(path).read_text())
        data["cases"], data["kind"]  # noqa: B018 (a KeyError names what is missing)
        return data
    except (OSError, ValueError, KeyError) as error:
        raise ValueError(f"{path}: not a readable trace ({error}); remake it with `repro trace --write` on a CPU "
                         f"of its kind, or delete it") from error


def write(trace: dict, folder: Path | None = None) -> Path:
    """Writes `trace` as its kind's fixture: one line per entry, so that a diff reads entry by entry."""
    target = fixture_path(name(trace), folder)
    head = {k: v for k, v in trace.items() if k != "cases"}
    lines = [json.dumps(head, sort_keys=True)[:-1] + ', "cases": {']
    for c, (case, parts) in enumerate(trace["cases"].items()):
        lines.append(f" {json.dumps(case)}: {{")
        for p, (part, entries) in enumerate(parts.items()):
            lines.append(f"  {json.dumps(part)}: [")
            lines += [f"   {json.dumps(e)}" + ("," if i < len(entries) - 1 else "") for i, e in enumerate(entries)]
            lines.append("  ]" + ("," if p < len(parts) - 1 else ""))
        lines.append(" }" + ("," if c < len(trace["cases"]) - 1 else ""))
    lines.append("}}")
    text = "\n".join(lines) + "\n"
    if json.loads(text) != trace:
        raise AssertionError("trace.write: the fixture does not read back as the trace")
    files.write_text(target, text)
    return target
