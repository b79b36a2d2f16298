"""`fsar-bench check-plugin`: every registered method, the example plugin package, and broken methods.

The contract (fsar_bench.contract.CHECKS) runs on random inputs with the tiny preset: a few
seconds per method on a CPU.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np
import pytest
import torch

import fsar_bench
from fsar_bench import registry
from fsar_bench.contract import CHECKS, check_method
from fsar_bench.protocol import group_by_class
from mean_rgb import MeanRGB

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "fsar_plugin_example"
EXAMPLE_NAME = "example_motion"


@pytest.fixture()
def check_cli(cli):
    """The CLI runner as installed: `check-plugin` must be mounted by fsar_bench/cli/app.py itself."""
    return cli


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: tiny models run single-threaded


def _by_name(results):
    return {r.name: r for r in results}


# -- every registered method ----------------------------------------------------------------------
@pytest.mark.parametrize("name", fsar_bench.list_methods())
def test_registered_method_passes_the_contract(name):
    results = check_method(name, "tiny")
    assert [r.name for r in results] == list(CHECKS)
    failed = {r.name: r.detail for r in results if r.status == "fail"}
    assert not failed, failed
    by_name = _by_name(results)
    skipped = {r.name for r in results if r.status == "skip"}
    trains = registry.method_class(name).train_presets.get("tiny", {}).get("steps", 1) != 0
    assert skipped == (set() if trains else {"training step"}), skipped
    assert by_name["logits shape"].detail.startswith("[6, 3]")  # 3-way, 2 queries per class


@pytest.mark.parametrize(("args", "expected"), [
    (["check-plugin", "protonett"], "did you mean 'protonet'"),
    (["check-plugin", "protonet", "--preset", "tinyy"], "did you mean 'tiny'"),
    (["check-plugin", "protonet", "--matcher", "otma"], "did you mean 'otam'"),
    (["check-plugin", "protonet", "--set", "backbon=x"], "did you mean 'backbone'"),
])
def test_cli_user_errors_exit_2(check_cli, args, expected):
    res = check_cli(*args)
    assert res.code == 2
    lines = [line for line in res.err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0], res.err


# -- the example third-party package ----------------------------------------------------------------
@pytest.fixture()
def example_plugin(tmp_path, monkeypatch):
    """The example package as installed: CI pip-installs it; otherwise a dist-info built from its
    pyproject.toml (same entry points) with the source folder on sys.path."""
    if EXAMPLE_NAME not in registry.method_entries():
        meta = tomllib.loads((EXAMPLE / "pyproject.toml").read_text())["project"]
        site = tmp_path / "site"
        dist = site / f"fsar_plugin_example-{meta['version']}.dist-info"
        dist.mkdir(parents=True)
        (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {meta['name']}\nVersion: {meta['version']}\n")
        groups = meta["entry-points"]
        (dist / "entry_points.txt").write_text("".join(
            f"[{group}]\n" + "".join(f"{k} = {v}\n" for k, v in eps.items()) for group, eps in groups.items()))
        monkeypatch.syspath_prepend(str(site))
        monkeypatch.syspath_prepend(str(EXAMPLE))
        registry.refresh()
    yield EXAMPLE_NAME
    registry.refresh()


def test_example_plugin_passes_through_the_cli(example_plugin, check_cli):
    res = check_cli("list", "methods")
    assert EXAMPLE_NAME in res.out and "fsar-plugin-example" in res.out
    res = check_cli("check-plugin", EXAMPLE_NAME)
    assert res.code == 0, res.out + res.err
    for check in CHECKS:  # the table: one row per check
        assert any(line.startswith(check + " ") and " PASS " in line for line in res.out.splitlines()), check
    assert "10 passed, 0 failed, 0 skipped" in res.out and not res.err
    method = fsar_bench.create_method(EXAMPLE_NAME, preset="tiny")
    assert method.matcher_name == "otam" and method.weights_source == "random-init"


def test_example_plugin_is_pip_installable(tmp_path):
    """Build and install the example package offline into a target folder; its entry point is there."""
    src = tmp_path / "src"
    shutil.copytree(EXAMPLE, src, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    target = tmp_path / "target"
    proc = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                           "--no-index", "--target", str(target), str(src)], capture_output=True, text=True,
                          timeout=300)
    if proc.returncode != 0 and "setuptools" in proc.stderr and "No module named" in proc.stderr:
        pytest.skip("setuptools is not installed: cannot build without network")
    assert proc.returncode == 0, proc.stderr
    [dist] = target.glob("fsar_plugin_example-*.dist-info")
    entry_points = (dist / "entry_points.txt").read_text()
    assert "[fsar_bench.methods]" in entry_points
    assert f"{EXAMPLE_NAME} = fsar_plugin_example.method:ExampleMotion" in entry_points
    assert (target / "fsar_plugin_example" / "method.py").exists()


# -- broken methods fail the right check -------------------------------------------------------------
_Base = MeanRGB  # passes every check; the classes below break one each


class BatchDependent(_Base):
    def embed(self, clips, texts=None):
        feats = super().embed(clips, texts)
        return feats - feats.mean(dim=0, keepdim=True)  # batch statistics: the cache would be wrong


class FirstShotOnly(_Base):
    def score_batch(self, query, support, support_labels, way, *, class_names=None):
        first = group_by_class(support, support_labels, way)[:, :, 0].mean(dim=2)  # [E, way, D]
        return -torch.cdist(query.mean(dim=2), first)


class PositionBias(_Base):
    def score_batch(self, query, support, support_labels, way, *, class_names=None):
        logits = super().score_batch(query, support, support_labels, way, class_names=class_names)
        return logits + torch.arange(way, dtype=logits.dtype)  # column c favoured by its position


class Unseeded(_Base):
    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        noise = np.random.default_rng().standard_normal(self.feature_dim)  # not from torch's RNG
        self.register_buffer("offset", torch.from_numpy(noise).float())

    def embed(self, clips, texts=None):
        return super().embed(clips, texts) * (1 + self.offset)


class Frozen(_Base):
    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.proj.requires_grad_(False)  # but the preset trains


class Transposed(_Base):
    def score_batch(self, query, support, support_labels, way, *, class_names=None):
        return super().score_batch(query, support, support_labels, way).transpose(1, 2)


class NanFeatures(_Base):
    def embed(self, clips, texts=None):
        return super().embed(clips, texts) / 0.0 * 0.0


BROKEN = {  # class -> (the check that catches it, its detail, other checks that fail as a consequence)
    BatchDependent: ("embed independent", "must not depend on the other videos", set()),
    FirstShotOnly: ("support order", "shots of each class", set()),
    PositionBias: ("class order", "did not permute the logit columns", set()),
    Unseeded: ("deterministic", "same seed", set()),
    Frozen: ("training step", "no trainable parameter", set()),
    Transposed: ("logits shape", "expected (6, 3) = [Q, way]", {"training step"}),  # its loss breaks too
    NanFeatures: ("embed shapes", "NaN or inf", {"training step"}),  # NaN loss
}


@pytest.fixture()
def runtime_method():
    names = []

    def register(name, cls):
        registry.register_method(name, cls)
        names.append(name)
        return name

    yield register
    for name in names:
        registry._runtime[registry.METHOD_GROUP].pop(name, None)


def test_the_base_of_the_broken_methods_passes_and_rng_is_restored(runtime_method):
    name = runtime_method("contract_base", _Base)
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    results = check_method(name)
    assert torch.equal(torch.rand(3), expected)  # the caller's RNG stream is untouched
    assert all(r.status == "pass" for r in results), results


@pytest.mark.parametrize("cls", list(BROKEN), ids=lambda c: c.__name__)
def test_broken_method_fails_the_right_check(runtime_method, cls):
    name = runtime_method(f"contract_{cls.__name__.lower()}", cls)
    results = _by_name(check_method(name))
    check, detail, also = BROKEN[cls]
    failed = {n for n, r in results.items() if r.status == "fail"}
    assert failed == {check} | also, {n: r.detail for n, r in results.items() if r.status == "fail"}
    assert detail in results[check].detail
    if check in ("embed shapes", "logits shape"):  # the checks that need its output are skipped, not failed
        assert any(r.status == "skip" and f"'{check}'" in r.detail for r in results.values())


def test_cli_exit_1_names_the_failing_check(runtime_method, check_cli):
    name = runtime_method("contract_batch_dependent", BatchDependent)
    res = check_cli("check-plugin", name)
    assert res.code == 1
    assert "embed independent  FAIL" in res.out and "1 failed" in res.out
    assert res.err.strip().startswith("error: ") and "embed independent" in res.err


def test_plugin_that_fails_to_import_exits_2(check_cli):
    registry._runtime[registry.METHOD_GROUP]["contract_missing"] = registry.Entry(
        "contract_missing", "fsar_no_such_module:Method", "fsar-plugin-missing 0.1")
    try:
        res = check_cli("check-plugin", "contract_missing")
    finally:
        registry._runtime[registry.METHOD_GROUP].pop("contract_missing")
    assert res.code == 2 and "failed to import" in res.err and "fix or uninstall" in res.err
