"""What a plugin author meets on the command line (issue #20): matcher hyperparameters through
`--set matcher.KEY=VALUE`, `check-plugin` on a matcher name, the card's default matcher without a
card.yaml, and `list methods` telling built-in from plugin."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor

from fsar_bench import Matcher, Method, registry
from fsar_bench.protocol import group_by_class
from fsar_bench.registry import create_method

pytestmark = pytest.mark.usefixtures("one_thread")
RUN = ["run", "protonet", "--dataset", "toy-appearance", "--matcher", "otam"]


def _one_error_line(res) -> str:
    assert res.code == 2, (res.out, res.err)
    lines = [line for line in res.err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), res.err
    return lines[0]


# -- matcher hyperparameters ---------------------------------------------------------------------------
def test_matcher_prefix_reaches_the_matcher():
    method = create_method("protonet", "tiny", matcher="otam", **{"matcher.lam": 0.05, "matcher.bidirectional": False})
    assert method.matcher.lam == 0.05 and method.matcher.bidirectional is False
    assert method.matcher_hparams == {"lam": 0.05, "bidirectional": False}
    assert "matcher.lam" not in method.hparams  # the method's own keywords stay the method's


@pytest.mark.parametrize("sets, fragment", [
    (["matcher.lamm=0.5"], "unknown hyperparameter 'matcher.lamm' of matcher 'otam'; did you mean 'matcher.lam'?"),
    (["lam=0.5"], "'lam' is a hyperparameter of matcher 'otam', not of method 'protonet'; "
                  "write it as --set matcher.lam=0.5"),
    (["matcher_kwargs={lam: 0.5}"], "--set matcher.KEY=VALUE"),
    (["matcher.lam=fast"], "--set matcher.lam='fast' is not a number (hyperparameter lam of matcher otam)"),
])
def test_bad_matcher_hyperparameters_are_one_line(workdir, cli, sets, fragment):
    args = [a for s in sets for a in ("--set", s)]
    line = _one_error_line(cli(*RUN, *args))
    assert fragment in line, line
    assert not (workdir / "fsar-runs").exists()  # refused before any work


def test_matcher_hyperparameters_follow_the_chosen_matcher(workdir, cli):
    """Without --matcher, `matcher.KEY` is checked against the method's default matcher (proto)."""
    line = _one_error_line(cli("run", "protonet", "--dataset", "toy-appearance", "--set", "matcher.lam=0.5"))
    assert "of matcher 'proto'" in line and "matcher.scale" in line


# -- check-plugin on matchers ----------------------------------------------------------------------------
class ReversedColumns(Matcher):
    """Cosine to the class means, with the logit columns in reverse class order: breaks class order."""

    def __init__(self, temperature: float = 10.0) -> None:
        super().__init__()
        self.temperature = temperature

    def score_batch(self, query: Tensor, support: Tensor, support_labels: Tensor, way: int, **kwargs) -> Tensor:
        protos = group_by_class(support, support_labels, way).mean(dim=(2, 3))  # [E, way, D]
        logits = torch.nn.functional.cosine_similarity(query.mean(dim=2).unsqueeze(2), protos.unsqueeze(1), dim=-1)
        return self.temperature * logits.flip(-1)


@pytest.fixture()
def shuffled_matcher():
    registry.register_matcher("shuffled_proto", ReversedColumns)
    yield "shuffled_proto"
    registry.MATCHERS.runtime.pop("shuffled_proto", None)


def test_check_plugin_takes_a_matcher_name(cli):
    res = cli("check-plugin", "otam", "--set", "matcher.lam=0.05")
    assert res.code == 0, res.out + res.err
    assert "contract checks of matcher 'otam' (under the neutral host method" in res.out
    assert "0 failed" in res.out


def test_check_plugin_matcher_failure_names_the_check(cli, shuffled_matcher):
    res = cli("check-plugin", shuffled_matcher)
    assert res.code == 1
    row = next(line for line in res.out.splitlines() if line.startswith("class order"))
    assert "FAIL" in row and "did not permute the logit columns" in row
    assert "matcher 'shuffled_proto' fails 1 contract check: class order" in res.err


def test_check_plugin_patch_matcher_needs_patches(cli):
    res = cli("check-plugin", "sca")
    assert res.code == 1 and "--patches 4" in res.out
    assert cli("check-plugin", "sca", "--patches", "4").code == 0


def test_check_plugin_unknown_name_names_both_registries(cli):
    line = _one_error_line(cli("check-plugin", "otm"))
    assert "neither a registered method nor a registered matcher" in line and "did you mean 'otam'" in line
    assert "known matchers: " in line and "known methods: " in line


# -- cards and listings -----------------------------------------------------------------------------------
def test_card_falls_back_to_the_declared_default_matcher():
    class NoCard(Method):
        default_matcher = "otam"

    NoCard.name = "no_card_here"  # no no_card_here.card.yaml and no card.yaml beside tests/
    assert NoCard.card().default_matcher == "otam"


def test_list_methods_says_built_in_or_plugin(cli):
    import json

    registry.register_method("runtime_thing", create_method("protonet", "tiny").__class__)
    try:
        rows = {r["name"]: r for r in json.loads(cli("list", "methods", "--json").out)}
    finally:
        registry.METHODS.runtime.pop("runtime_thing", None)
    assert rows["protonet"]["origin"] == "built-in" and rows["protonet"]["package"].startswith("fsar-bench ")
    assert rows["runtime_thing"]["origin"] == "runtime"
    plugins = [r for r in rows.values() if r["origin"] == "plugin"]
    assert all(not r["package"].startswith("fsar-bench ") for r in plugins)


def test_a_matcher_name_where_a_method_is_expected(workdir, cli):
    line = _one_error_line(cli("run", "otam", "--dataset", "toy-appearance"))
    assert "'otam' is a matcher, not a method" in line and "--matcher otam" in line
