"""Identity of a result (issue #17): code digests, hardware class, run and group keys, reuse,
and the leakage audit in the record."""

from __future__ import annotations

import importlib
import sys
import textwrap

import numpy as np
import pytest

from fsar_bench import registry
from fsar_bench.identity import class_code, configure_determinism, hardware_class, run_keys, source_files

PLUGIN = '''
from torch import nn

from fsar_bench import Method
from fsar_plugin_edit.util import pool


class Edit(Method):
    """A third-party method whose embed a test edits."""

    presets = {"tiny": {"frames": 4, "image_size": 16}, "full": {}}
    train_presets = {"tiny": {"steps": 0}}

    def __init__(self, *, frames: int = 8, image_size: int = 224, width: int = 8) -> None:
        super().__init__(frames=frames, image_size=image_size)
        self.proj = nn.Linear(3, width)
        self.feature_dim = width

    def embed(self, clips, texts=None):
        return self.proj(pool(clips))
'''
UTIL = '''
def pool(clips):
    return clips.mean(dim=(-1, -2))
'''


@pytest.fixture()
def plugin(tmp_path, monkeypatch):
    """An installed-looking distribution `fsar-plugin-edit 0.1` providing method 'edit'."""
    site = tmp_path / "site"
    pkg = site / "fsar_plugin_edit"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text(textwrap.dedent(PLUGIN))
    (pkg / "util.py").write_text(textwrap.dedent(UTIL))
    dist = site / "fsar_plugin_edit-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: fsar-plugin-edit\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[fsar_bench.methods]\nedit = fsar_plugin_edit:Edit\n")
    monkeypatch.syspath_prepend(str(site))
    registry.refresh()
    yield pkg
    for name in [m for m in sys.modules if m.startswith("fsar_plugin_edit")]:
        del sys.modules[name]
    registry.refresh()


def _reload(pkg) -> None:
    """What a new process would see after the edit: the plugin imported afresh."""
    for name in [m for m in sys.modules if m.startswith("fsar_plugin_edit")]:
        del sys.modules[name]
    importlib.invalidate_caches()
    registry.refresh()


def test_code_digest_follows_imports_within_the_package(plugin):
    cls = registry.method_class("edit")
    assert set(source_files(cls.__module__)) == {"fsar_plugin_edit", "fsar_plugin_edit.util"}
    before = class_code(cls, "fsar-plugin-edit 0.1")
    assert before.startswith("fsar-plugin-edit 0.1 sha256:")
    (plugin / "util.py").write_text(textwrap.dedent(UTIL).replace("(-1, -2)", "(-2, -1)"))  # an imported module
    assert class_code(cls, "fsar-plugin-edit 0.1") != before
    assert class_code(cls, "fsar-plugin-edit 0.2").split()[-1] == class_code(cls, "fsar-plugin-edit 0.1").split()[-1]


def test_run_key_covers_seed_and_hardware_but_group_key_does_not():
    ident = {"method": "m", "dataset": "d", "train_seed": "0", "train_config": {"seed": "0", "lr": 0.1, "device": "cpu"},
             "code": {"method": "sha256:1"}, "run_key": "", "group_key": ""}
    g, k = run_keys(ident, "cpu/x86_64-AVX2/1t/torch-2")
    g2, k2 = run_keys({**ident, "train_seed": "0.1", "train_config": {"seed": "0.1", "lr": 0.1}}, "cpu/x86_64-AVX2/1t/torch-2")
    g3, k3 = run_keys(ident, "cuda:A100/x86_64-AVX2/1t/torch-2")
    assert g == g2 == g3 and len({k, k2, k3}) == 3
    g4, _ = run_keys({**ident, "code": {"method": "sha256:2"}}, "cpu/x86_64-AVX2/1t/torch-2")
    g5, _ = run_keys({**ident, "train_config": {"seed": "0", "lr": 0.2}}, "cpu/x86_64-AVX2/1t/torch-2")
    assert len({g, g4, g5}) == 3  # code and configuration are in the group key


def test_tiny_cpu_runs_fix_threads_and_determinism():
    import torch

    before = torch.get_num_threads()
    try:
        threads, deterministic = configure_determinism("cpu", None, tiny=True)
        assert threads == 1 and deterministic and torch.are_deterministic_algorithms_enabled()
        assert "/1t/" in hardware_class("cpu") and hardware_class("cpu").startswith("cpu/")
        assert configure_determinism("cpu", 2, tiny=True)[0] == 2  # bench.yaml `threads` wins
    finally:
        torch.set_num_threads(before)
        torch.use_deterministic_algorithms(False)


def test_editing_a_plugin_changes_key_and_number_and_reuses_when_unchanged(plugin, workdir):
    """One line of the plugin's embed edited: new key, re-embedding, a new number; the unchanged
    command again: the finished run is reused and MLflow gets no new run."""
    import mlflow

    from fsar_bench.config import load_config
    from fsar_bench.engine.runner import RunSpec, execute

    spec = RunSpec(method="edit", dataset="toy-appearance", episodes=30, no_train=True)
    lines: list[str] = []
    first = execute(spec, load_config(), log=lines.append)
    assert first.summary["code"]["method"].startswith("fsar-plugin-edit 0.1 sha256:")
    assert first.summary["hardware_class"].startswith("cpu/") and first.summary["group_key"]
    caches = set((workdir / "fsar-runs" / "cache").iterdir())

    def count() -> int:
        client = mlflow.MlflowClient()
        exp = client.get_experiment_by_name(load_config()["experiment"])
        return len(client.search_runs([exp.experiment_id], f"tags.`fsar.run_key` = '{first.summary['run_key']}'"))

    n_runs = count()
    again = execute(spec, load_config(), log=lines.append)
    assert again.summary["run_key"] == first.summary["run_key"] and again.summary["reused"]
    assert any(line.startswith("reused run from ") and first.summary["hardware_class"] in line for line in lines)
    assert count() == n_runs  # a re-run of a finished key adds no MLflow run

    (plugin / "__init__.py").write_text(textwrap.dedent(PLUGIN).replace("self.proj(pool(clips))",
                                                                        "self.proj(pool(clips).flip(-1))"))
    _reload(plugin)
    edited = execute(spec, load_config(), log=lines.append)
    assert edited.summary["run_key"] != first.summary["run_key"]
    assert edited.summary["group_key"] != first.summary["group_key"]
    assert edited.summary["code"]["method"] != first.summary["code"]["method"]
    assert len(set((workdir / "fsar-runs" / "cache").iterdir()) - caches) >= 1  # re-embedded
    a, b = first.results["accuracy"].to_numpy(), edited.results["accuracy"].to_numpy()
    assert not np.array_equal(a, b)  # a new number from the new code


def test_cross_dataset_record_lists_overlapping_classes():
    """kinetics100 -> ucf101 (card metadata only: no videos needed) stores the leakage audit."""
    from fsar_bench.engine.replicates import leakage_record
    from fsar_bench.results.record import Identity, RunRecord

    cls = registry.method_class("protonet")
    ident = Identity(method="protonet", dataset="ucf101", train_dataset="kinetics100", weights="random-init")
    ident.leakage = leakage_record(ident, cls)
    assert ident.leakage["cross_dataset"] and ident.leakage["seen_in_training"]
    pairs = {(m["test_class"], m["train_class"]) for m in ident.leakage["seen_in_training"]}
    assert len(pairs) == len(ident.leakage["seen_in_training"]) > 0
    summary = RunRecord(ident).to_summary()
    assert summary["leakage"]["flag"].endswith("test classes seen in training")
    back = RunRecord.from_summary(summary)
    assert back.identity.leakage == ident.leakage
    same = Identity(method="protonet", dataset="ucf101", train_dataset="ucf101", weights="random-init")
    assert leakage_record(same, cls) == {}  # one dataset's splits are disjoint; random init: no pretraining
    pre = Identity(method="protonet", dataset="ucf101", train_dataset="ucf101", weights="pretrained")
    assert leakage_record(pre, cls)["pretraining"] == cls.card().pretraining  # the card's declared data
