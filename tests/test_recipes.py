"""Recipe resolution (fsar_bench.recipes): tables per method, sources per value, overrides, docs."""

from __future__ import annotations

from pathlib import Path

import pytest

from fsar_bench.data.cards import get_card
from fsar_bench.engine.schedule import ScheduleSpec
from fsar_bench.engine.train import TrainConfig
from fsar_bench.errors import FsarError
from fsar_bench.protocol import Method
from fsar_bench.recipes import (
    RECIPE_FIELDS,
    SOURCE_KINDS,
    hosted_methods,
    load_table,
    method_table,
    render_recipes_doc,
    resolve_recipe,
    with_overrides,
)
from fsar_bench.registry import method_class

REAL = ["ssv2_full", "ssv2_small", "kinetics100", "hmdb51", "ucf101"]
DOC = Path(__file__).resolve().parents[1] / "docs" / "recipes.md"


def test_clip_fsar_follows_the_released_configs():
    r = resolve_recipe(method_class("clip_fsar"), "ssv2_full", 1)
    assert (r.steps.value, r.episodes_per_update.value, r.updates, r.lr.value) == (120_000, 16, 7_500, 5e-5)
    # STEPS_ITER 4000, STEPS [0, 4, 6] under epoch = floor(i/S) + i/S: iterations 8000 / 12000 = updates 2000 / 3000
    spec = r.schedule.value
    assert (spec.kind, spec.warmup_updates, spec.milestones, spec.factors) == ("multistep", 1000, (2000, 3000),
                                                                               (1.0, 0.1, 0.01))
    assert spec.warmup_start_factor == pytest.approx(0.2)  # 1e-5 / 5e-5
    assert "floor(i/S)+i/S" in r.schedule.source and r.schedule.source.startswith("official config:")
    five = resolve_recipe(method_class("clip_fsar"), "hmdb51", 5)
    assert (five.updates, five.lr.value, five.train_shot.value, five.shot_in_training) == (1_250, 1e-5, 1, 1)


def test_dataset_and_shot_layers():
    i2st = method_class("i2st")
    one, five = resolve_recipe(i2st, "kinetics100", 1), resolve_recipe(i2st, "kinetics100", 5)
    assert (one.train_query.value, five.train_query.value) == (7, 3)  # HyRSM 1-shot / 5-shot configs
    assert "5shot" in five.train_query.source
    assert resolve_recipe(i2st, "hmdb51", 1).episodes_per_update.value == 8  # BATCH_SIZE_PER_TASK 2 x 4 GPUs
    ma = resolve_recipe(method_class("ma_fsar"), "ssv2_small", 1)
    assert ma.steps.value == 100_000 and ma.steps.source.startswith("paper: MA-FSAR section 4.1.3")


def test_dmgal_release_variant_is_selectable():
    cls = method_class("dmgal_ft")
    paper = resolve_recipe(cls, "ucf101", 1)
    release = resolve_recipe(cls, "ucf101", 1, variant="release")
    assert (paper.optimizer.value, release.optimizer.value) == ("adam", "sgd")
    assert (release.lr.value, release.steps.value, release.schedule.value.kind) == (1.5e-4, 100_020, "constant")
    assert release.variant == "release" and "run_DMGAL.py" in release.lr.source
    with pytest.raises(FsarError, match="unknown recipe variant 'relase'.*did you mean 'release'"):
        resolve_recipe(cls, "ucf101", 1, variant="relase")


@pytest.mark.parametrize("name", sorted(hosted_methods()))
def test_every_value_has_a_source(name):
    cls = method_class(name)
    table = method_table(cls)
    for ds in REAL:
        for shot in (1, 5):
            r = resolve_recipe(cls, ds, shot, table.presets[0] if table else "full")
            for field, value, source in r.rows():
                assert source.strip(), (name, ds, shot, field)
            assert set(r.as_params()) >= {f"recipe.{f}.source" for f in RECIPE_FIELDS}
    if table is not None:  # every value written in a table names a paper, an official config or a reason
        layers = [table.defaults, *table.datasets.values(), *table.variants.values(),
                  *(b for shots in table.shots.values() for b in shots.values())]
        assert all(e.source.startswith(SOURCE_KINDS) for layer in layers for e in layer.values())


def test_overrides_are_marked():
    cls = method_class("clip_fsar")
    r = resolve_recipe(cls, "ucf101", 1, overrides=[("bench.yaml training", {"steps": 800, "seed": "3"}),
                                                    ("--lr", {"lr": "3e-4"}), ("--set", {"schedule": "cosine"})])
    assert r.overrides == {"steps", "lr", "schedule"}
    assert (r.steps.source, r.lr.source, r.schedule.source) == (
        "override: bench.yaml training", "override: --lr", "override: --set")
    assert r.lr.value == 3e-4 and r.schedule.value.total_updates == r.updates == 50
    assert r.weight_decay.source.startswith("official config:")  # untouched values keep their source
    later = with_overrides(r, {"steps": 1600}, "--steps")
    assert later.steps.source == "override: --steps" and later.overrides == {"steps", "lr", "schedule"}
    assert r.as_params()["recipe.overrides"] == "lr,schedule,steps"


def test_a_card_that_forbids_flips_wins():
    r = resolve_recipe(method_class("protonet"), "ssv2_full", 1, overrides=[("--set", {"flip": True})])
    assert r.flip.value is False and "dataset card ssv2_full" in r.flip.source


def test_unknown_dataset_is_a_one_line_error():
    with pytest.raises(FsarError) as err:
        resolve_recipe(method_class("protonet"), "ssv2_fulll", 1)
    assert "unknown dataset 'ssv2_fulll'" in str(err.value) and "\n" not in str(err.value)


def test_bad_override_value_is_a_one_line_error():
    with pytest.raises(FsarError, match="steps='many' is not a whole number"):
        resolve_recipe(method_class("protonet"), "ucf101", 1, overrides=[("--set", {"steps": "many"})])


@pytest.mark.parametrize("name", sorted(hosted_methods()))
def test_toy_recipes_are_the_tiny_train_presets(name):
    """On the toy datasets (preset tiny) the recipe is TrainConfig's defaults + train_presets['tiny'],
    as engine/runner.py built TrainConfig before recipes; augmentation as before (card flip, jitter 0.2)."""
    cls = method_class(name)
    for ds in ("toy-appearance", "toy-motion"):
        r = resolve_recipe(cls, ds, 1, "tiny")
        defaults = {k: v for k, v in vars(TrainConfig()).items() if k in r.train_config()}
        assert r.train_config() == {**defaults, **{k: v for k, v in cls.train_presets["tiny"].items()
                                                   if k in defaults}}
        assert (r.schedule.value.kind, r.optimizer.value, r.jitter.value, r.flip.value) == (
            "constant", "adam", 0.2, get_card(ds).flip)
        assert r.table == "" and r.train_shot.value is None


class _NoTable(Method):
    presets = {"full": {"image_size": 64}, "tiny": {}}
    train_presets = {"full": {"steps": 42, "lr": 0.5}}


def test_a_plugin_without_a_table_uses_its_train_presets():
    r = resolve_recipe(_NoTable, "ucf101", 1)
    assert (r.steps.value, r.lr.value, r.image_size.value) == (42, 0.5, 64)
    assert r.steps.source == "plugin defaults: train_presets['full']"
    assert r.image_size.source == "plugin defaults: presets['full']"
    assert r.frames.source.startswith("plugin defaults: _NoTable.__init__")


@pytest.mark.parametrize("text, message", [
    ("defaults: {lr: {value: 1e-3, source: 'because'}}", "start the source with one of"),
    ("defaults: {lrr: {value: 1e-3, source: 'ours: x'}}", "unknown recipe field 'lrr'"),
    ("defaults: {lr: 1e-3}", "must be {value: ..., source: ...}"),
    ("datasets: {ucf1010: {}}", "unknown dataset 'ucf1010'"),
    ("defaults: {optimizer: {value: adamw, source: 'ours: x'}}", "unknown optimizer 'adamw'"),
    ("colour: red", "unknown key 'colour'"),
])
def test_bad_tables_are_one_line_errors(text, message):
    with pytest.raises(FsarError) as err:
        load_table(text, "x.recipes.yaml", REAL)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_recipes_doc_is_current():
    expected = render_recipes_doc(hosted_methods())
    assert DOC.read_text(encoding="utf-8") == expected, (
        "docs/recipes.md is stale: python -c 'from fsar_bench.recipes import *; "
        "open(\"docs/recipes.md\", \"w\").write(render_recipes_doc(hosted_methods()))'")


def test_standard_override_layers():
    from fsar_bench.recipes import method_sets, override_layers

    sets = {"lr": 2e-4, "frames": 16, "r1": 4}
    layers = override_layers({"steps": 900, "seed": "1", "num_workers": 2}, {"steps": 300, "lr": None}, sets)
    assert layers == [("bench.yaml train", {"steps": 900}), ("--steps", {"steps": 300}),
                      ("--set", {"lr": 2e-4, "frames": 16})]
    assert method_sets(sets) == {"frames": 16, "r1": 4}
    r = resolve_recipe(method_class("protonet"), "hmdb51", 1, overrides=layers)
    assert (r.steps.value, r.steps.source, r.lr.source, r.frames.value) == (
        300, "override: --steps", "override: --set", 16)
    assert r.method_overrides() == {"frames": 16, "image_size": 224}


def test_bench_yaml_train_keys_are_the_recipe_fields_and_the_seed():
    from fsar_bench.config import TRAIN_KEYS

    assert TRAIN_KEYS == {*RECIPE_FIELDS, "seed"}


def test_train_config_carries_optimizer_and_schedule_as_plain_values():
    r = resolve_recipe(method_class("dmgal_ft"), "ucf101", 1, variant="release")
    cfg = TrainConfig(**r.train_config())
    assert cfg.optimizer == "sgd" and cfg.schedule == r.schedule.value.as_dict()
    assert ScheduleSpec.from_mapping(dict(cfg.schedule)) == r.schedule.value
