"""`repro trace` (issue 34): the bytes of the first steps, operation by operation, per CPU kind."""

import copy
import json
import os

import pytest
from click.testing import CliRunner

from repro.tools import trace
from repro.cli import main


def _entry(name, inputs, sha, total=1.0):
    return {"name": name, "op": "Dense", "inputs": inputs, "shape": [2], "dtype": "float32", "sha256": sha,
            "sum": total, "abs": 2.0}


def _trace(kind="amd-avx2"):
    forward = [_entry("tokens", [], "t"), _entry("hidden", ["tokens"], "h"), _entry("output", ["hidden"], "o"),
               _entry("cross_entropy", ["output"], "c")]
    step = [_entry("loss", ["minibatch"], "l"), _entry("gradient:w", ["loss"], "g")]
    updates = [{"update": u, "state": f"s{u}", "evaluation": [(1.5 + u).hex()] * 5} for u in range(4)]
    return {"kind": kind, "cpu": {"model": "test"}, "cases": {"mlp": {"forward": forward, "step": step,
                                                                        "updates": updates}}}


def _by_part(differences):
    return {d.part: d for d in differences}


def test_identical_traces_have_no_difference():
    assert all(not d.first and d.differing == 0 for d in trace.compare(_trace(), _trace()))


def test_the_first_differing_operation_is_named_with_whether_its_inputs_agreed():
    ours = _trace()
    forward = ours["cases"]["mlp"]["forward"]
    forward[2].update(sha256="o2", sum=1.1)  # the output layer computes otherwise from the same hidden units
    forward[3].update(sha256="c2")  # and what follows from it differs too
    found = _by_part(trace.compare(ours, _trace()))["forward"]
    assert (found.first, found.inputs_identical, found.differing, found.total) == ("output", True, 2, 4)
    assert found.relative == pytest.approx(0.05)  # of the sum of magnitudes

    forward[1].update(sha256="h2")  # now the hidden units already differ: the output's inputs differ
    found = _by_part(trace.compare(ours, _trace()))["forward"]
    assert (found.first, found.inputs_identical) == ("hidden", True)
    assert _by_part(trace.compare(ours, _trace()))["step"].first == ""


def test_updates_say_whether_the_state_or_only_the_evaluation_parts():
    ours = _trace()
    ours["cases"]["mlp"]["updates"][2]["evaluation"][3] = (3.5 + 2 ** -20).hex()  # the evaluation alone
    ours["cases"]["mlp"]["updates"][3]["state"] = "other"
    found = _by_part(trace.compare(ours, _trace()))["updates"]
    assert (found.first, found.differing) == ("update 2 (state identical there)", 2)
    ours["cases"]["mlp"]["updates"][2]["state"] = "other"
    assert _by_part(trace.compare(ours, _trace()))["updates"].first == "update 2 (state differs)"


def test_traces_of_other_code_are_refused(tmp_path):
    ours = _trace()
    ours["cases"]["mlp"]["forward"][1]["name"] = "renamed"
    with pytest.raises(ValueError, match="differ in name"):
        trace.compare(ours, _trace())
    damaged = tmp_path / "amd-avx2.json"
    damaged.write_text('{"kind": "amd-avx2", "cas')
    with pytest.raises(ValueError, match="not a readable trace.*repro trace --write"):
        trace.load(damaged)


def test_a_written_fixture_reads_back_line_per_entry_and_is_named_by_kind_and_settings(tmp_path):
    path = trace.write(_trace(), tmp_path)
    assert path.name == "amd-avx2.json" and trace.load(path) == _trace()
    assert len(path.read_text().splitlines()) > 10  # one entry a line, for diffs
    pinned = {**_trace(), "environment": {"XLA_FLAGS": "--xla_cpu_max_isa=AVX2 --a/b", "ONEDNN_MAX_CPU_ISA": "AVX2"}}
    assert trace.write(pinned, tmp_path).name == \
        "amd-avx2+ONEDNN_MAX_CPU_ISA=AVX2+XLA_FLAGS=--xla_cpu_max_isa=AVX2_--a_b.json"


@pytest.mark.slow
def test_this_machine_matches_its_cpu_kinds_committed_trace():
    """The guard issue 34 asks for: this CPU kind's committed bytes (tests/cpu_traces/KIND.json) are this machine's.

    The MLP case only (about 10 s); `repro trace` compares both. A kind without a committed trace has nothing to
    compare with: make one with `repro trace --write` on it and commit it.
    """
    kind = trace.cpu_kind()
    path = trace.fixture_path(trace.name({"kind": kind, "environment": {k: os.environ[k] for k in trace.KNOBS
                                                                      if k in os.environ}}))
    if not path.is_file():
        pytest.skip(f"no committed trace for this CPU kind ({kind}): run `repro trace --write` and commit {path.name}")
    committed = trace.load(path)
    committed["cases"] = {"mlp": committed["cases"]["mlp"]}
    differences = trace.compare(trace.collect(("mlp",)), committed)
    assert [d for d in differences if d.first] == [], "\n".join(trace.describe(differences))


@pytest.mark.slow
def test_the_command_writes_a_fixture_and_fails_when_this_kinds_differs(tmp_path, monkeypatch):
    monkeypatch.setattr(trace, "FIXTURES", tmp_path)
    runner = CliRunner()
    result = runner.invoke(main, ["trace", "--case", "mlp", "--write"])
    assert result.exit_code == 0, result.output
    [written] = tmp_path.glob("*.json")
    assert "wrote" in result.output and written.name.startswith(trace.cpu_kind())

    planted = json.loads(written.read_text())
    other = copy.deepcopy(planted)
    other["kind"] = "other-kind"
    other["cases"]["mlp"]["forward"][3]["sha256"] = "0" * 16  # another kind's output layer: reported, not an error
    (tmp_path / "other-kind.json").write_text(json.dumps(other))
    result = runner.invoke(main, ["trace", "--case", "mlp"])
    assert result.exit_code == 0, result.output
    assert "mlp forward: 1 of 5 differ, first output; its inputs are identical" in result.output

    planted["cases"]["mlp"]["updates"][5]["state"] = "0" * 16  # this kind's own bytes changed: a failure
    written.write_text(json.dumps(planted))
    result = runner.invoke(main, ["trace", "--case", "mlp"])
    assert result.exit_code == 1 and "mlp updates: 1 of 13 differ, first update 5 (state differs)" in result.output

