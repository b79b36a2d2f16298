"""`fsar-bench run ... --dry-run`: the resolved recipe (every value with its source), the method's
hyperparameters and weights, for every registered method on every real dataset, with no data, no
model built and nothing written (issue #18 section 2)."""

from __future__ import annotations

import pytest

from fsar_bench.config import load_config
from fsar_bench.data.cards import get_card, list_cards
from fsar_bench.engine.runner import RunSpec, dry_run
from fsar_bench.recipes import RECIPE_FIELDS
from fsar_bench.registry import list_methods, method_class
from fsar_bench.weights import paper_weights

REAL = sorted(n for n in list_cards() if not get_card(n).is_toy)


@pytest.fixture
def here(tmp_path, monkeypatch):
    """An empty working directory and data folder: a dry run needs neither videos nor a toy dataset."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("FSAR_BENCH_DATA", str(tmp_path / "no-data"))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'no-mlflow.db'}")
    monkeypatch.delenv("FSAR_BENCH_CONFIG", raising=False)
    return tmp_path


def _recipe_rows(text: str) -> dict[str, str]:
    """field -> the rest of its line (value and source) from the recipe table of a dry run."""
    rows = {}
    for line in text.splitlines():
        parts = line.split()
        if line.startswith("  ") and parts and parts[0] in RECIPE_FIELDS:
            rows[parts[0]] = line.strip()[len(parts[0]):].strip()
    return rows


def test_the_five_real_datasets():
    assert REAL == ["hmdb51", "kinetics100", "ssv2_full", "ssv2_small", "ucf101"]


@pytest.mark.parametrize("dataset", REAL)
@pytest.mark.parametrize("method", list_methods())
def test_dry_run_shows_weights_and_a_sourced_recipe(method, dataset, here):
    text = dry_run(RunSpec(method=method, dataset=dataset), load_config())
    rows = _recipe_rows(text)
    assert list(rows) == list(RECIPE_FIELDS)
    for name, rest in rows.items():  # a value and a source of a known kind
        assert rest.split()[0] and any(k in rest for k in ("paper:", "official config:", "ours:", "plugin defaults",
                                                          "harness default", "dataset card")), (name, rest)
    paper = paper_weights(method_class(method), "full")
    weights = next(line for line in text.splitlines() if line.startswith("weights:"))
    if paper:
        assert weights == f"weights: {paper} (method card, preset full); weights_status: paper"
    assert f"on {dataset} 5w1s" in text
    assert list(here.iterdir()) == []  # nothing written


def test_cli_dry_run_for_dmgal_ft_on_ucf101(here, cli):
    res = cli("run", "dmgal_ft", "--dataset", "ucf101", "--dry-run", "--set", "lr=2e-4", "--steps", "800")
    assert res.code == 0, res.err
    assert "weights: hub:timm/resnet50.tv_in1k (method card, preset full); weights_status: paper" in res.out
    rows = _recipe_rows(res.out)
    assert rows["lr"].split()[0] == "0.0002" and rows["lr"].endswith("override: --set")
    assert rows["steps"].split()[0] == "800" and rows["steps"].endswith("override: --steps")
    assert "dmgal_ft.recipes.yaml" in res.out and "nothing was trained, evaluated or written" in res.out
    assert list(here.iterdir()) == []  # no run folder, no MLflow store


def test_cli_recipe_variant(here, cli):
    res = cli("run", "dmgal_ft", "--dataset", "ucf101", "--dry-run", "--recipe", "release")
    assert res.code == 0, res.err
    rows = _recipe_rows(res.out)
    assert rows["optimizer"].split()[0] == "sgd" and "variant release" in res.out
    bad = cli("run", "dmgal_ft", "--dataset", "ucf101", "--dry-run", "--recipe", "relase")
    assert bad.code == 2 and "unknown recipe variant 'relase'" in bad.err and "known recipe variants: release" in bad.err
    assert len(bad.err.strip().splitlines()) == 1
    none = cli("run", "protonet", "--dataset", "toy-motion", "--recipe", "release")
    assert none.code == 2 and "has no recipe variant 'release'" in none.err


def test_dry_run_on_toy_is_the_tiny_preset(here, cli):
    res = cli("run", "protonet", "--dataset", "toy-motion", "--dry-run")
    assert res.code == 0, res.err
    cls = method_class("protonet")
    rows = _recipe_rows(res.out)
    assert rows["steps"].split()[0] == str(cls.train_presets["tiny"]["steps"])
    assert rows["schedule"].startswith("constant") and "weights: random-init" in res.out
    assert list(here.iterdir()) == []  # the toy dataset is not generated either
