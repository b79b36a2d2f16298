"""Bad input: a one-line error naming the problem and the fix, exit code 2, nothing written."""

from __future__ import annotations

import pytest

CASES = {
    "unknown method": (["run", "protonett", "--dataset", "toy-appearance"], "did you mean 'protonet'"),
    "unknown dataset": (["run", "protonet", "--dataset", "toy-apperance"], "did you mean 'toy-appearance'"),
    "way too large": (["run", "protonet", "--dataset", "toy-appearance", "--way", "30"], "--way 24 or fewer"),
    "shot+query too large": (["run", "protonet", "--dataset", "toy-appearance", "--shot", "12"], "lower --shot"),
    "unknown preset": (["run", "protonet", "--dataset", "toy-appearance", "--preset", "tinyy"], "did you mean 'tiny'"),
    "unknown hyperparameter": (["run", "protonet", "--dataset", "toy-appearance", "--set", "backbon=x"],
                               "did you mean 'backbone'"),
    "unknown matcher": (["run", "protonet", "--dataset", "toy-appearance", "--matcher", "tr"], "unknown matcher"),
    "real dataset without root": (["run", "protonet", "--dataset", "ucf101"], "datasets.ucf101.root"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_one_line_exit_2(case, workdir, cli):
    args, expected = CASES[case]
    res = cli(*args)
    assert res.code == 2, (res.out, res.err)
    lines = [line for line in res.err.splitlines() if line.strip()]
    assert len(lines) == 1, res.err
    assert lines[0].startswith("error: ") and expected in lines[0]
    assert not (workdir / "fsar-runs").exists()  # nothing half-written


def test_unknown_bench_yaml_key(workdir, cli):
    (workdir / "bench.yaml").write_text("protocl:\n  way: 5\n")
    res = cli("run", "protonet", "--dataset", "toy-appearance")
    assert res.code == 2
    assert "unknown key 'protocl' in bench.yaml" in res.err and "did you mean 'protocol'" in res.err
    assert "known keys: " in res.err and ",s" not in res.err
    (workdir / "bench.yaml").write_text("protocol:\n  wayy: 5\n")
    res = cli("run", "protonet", "--dataset", "toy-appearance")
    assert res.code == 2 and "did you mean 'way'" in res.err
    (workdir / "bench.yaml").write_text("protocol: [unclosed\n")
    res = cli("run", "protonet", "--dataset", "toy-appearance")
    assert res.code == 2 and "not valid YAML" in res.err
