"""Registry: entry-point discovery, did-you-mean, overrides, third-party plugins through the CLI."""

from __future__ import annotations

import textwrap

import pytest

import fsar_bench
from fsar_bench import FsarError, registry

PLUGIN = '''
from mean_rgb import MeanRGB  # tests/mean_rgb.py


class Demo(MeanRGB):
    """A third-party method: mean RGB per frame, projected."""

    presets = {"tiny": {"frames": 4, "image_size": 32}, "full": {}}
    train_presets = {"tiny": {"steps": 2, "lr": 1e-2, "train_query": 1}}
'''


@pytest.fixture()
def fake_distribution(tmp_path, monkeypatch):
    """An installed-looking distribution (dist-info with entry points) on sys.path."""
    site = tmp_path / "site"
    (site / "fsar_plugin_demo").mkdir(parents=True)
    (site / "fsar_plugin_demo" / "__init__.py").write_text(textwrap.dedent(PLUGIN))
    dist = site / "fsar_plugin_demo-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: fsar-plugin-demo\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(
        "[fsar_bench.methods]\ndemo = fsar_plugin_demo:Demo\nbroken = fsar_plugin_missing_module:Nope\n")
    monkeypatch.syspath_prepend(str(site))
    registry.refresh()
    yield site
    registry.refresh()


def test_builtins_registered_through_entry_points():
    assert "protonet" in fsar_bench.list_methods()
    assert {"proto", "otam", "trx", "bimhm", "sca", "global_local"} <= set(fsar_bench.list_matchers())
    entry = registry.method_entries()["protonet"]
    assert entry.origin.startswith("fsar-bench")


def test_create_method_with_preset_and_override():
    m = fsar_bench.create_method("protonet", preset="tiny", image_size=40)
    assert m.image_size == 40 and m.preset == "tiny" and m.hparams["image_size"] == 40
    assert m.weights_source == "random-init"
    m2 = fsar_bench.create_method("protonet", preset="tiny", matcher="otam")
    assert m2.matcher_name == "otam"


def test_did_you_mean():
    with pytest.raises(FsarError, match="did you mean 'protonet'"):
        fsar_bench.create_method("protonett", preset="tiny")
    with pytest.raises(FsarError, match="did you mean 'image_size'"):
        fsar_bench.create_method("protonet", preset="tiny", image_sise=3)
    with pytest.raises(FsarError, match="unknown matcher 'otma'.*did you mean 'otam'"):
        fsar_bench.create_matcher("otma")


def test_third_party_plugin_listed_and_run(fake_distribution, workdir, cli):
    res = cli("list", "methods")
    assert res.code == 0
    assert "demo" in res.out and "fsar-plugin-demo 0.1" in res.out
    assert "broken" in res.out and "unavailable" in res.out  # a broken plugin does not break the CLI
    res = cli("run", "demo", "--dataset", "toy-appearance", "--episodes", "20")
    assert res.code == 0, res.err
    assert "accuracy" in res.out
    res = cli("run", "broken", "--dataset", "toy-appearance")
    assert res.code == 2 and "failed to import" in res.err
