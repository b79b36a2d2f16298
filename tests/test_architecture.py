"""The import graph of the core: the protocol and the data layer are leaves (issue #16).

Each check imports one module in a fresh interpreter (the test session has imported everything
already) and lists which fsar_bench modules came with it.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest


def loaded_with(module: str) -> set[str]:
    """The fsar_bench modules a fresh interpreter holds after `import <module>`."""
    code = (f"import sys, json, {module}\n"
            "print(json.dumps(sorted(m for m in sys.modules if m.startswith('fsar_bench'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


def test_protocol_imports_no_engine_and_no_registry():
    mods = loaded_with("fsar_bench.protocol")
    assert "fsar_bench.protocol" in mods
    assert not {m for m in mods if m.startswith("fsar_bench.engine")}, sorted(mods)
    assert "fsar_bench.registry" not in mods, sorted(mods)


@pytest.mark.parametrize("module", ["fsar_bench.data.source", "fsar_bench.data.check", "fsar_bench.data.preflight",
                                    "fsar_bench.data.toy", "fsar_bench.data.cards"])
def test_data_is_a_leaf(module):
    mods = loaded_with(module)
    assert module in mods
    above = {m for m in mods if m.startswith(("fsar_bench.engine", "fsar_bench.registry", "fsar_bench.protocol"))}
    assert not above, sorted(above)


def test_registry_and_episodes_import_no_engine():
    for module in ("fsar_bench.registry", "fsar_bench.episodes.locks"):
        mods = loaded_with(module)
        assert not {m for m in mods if m.startswith("fsar_bench.engine")}, (module, sorted(mods))
    assert "fsar_bench.protocol" not in loaded_with("fsar_bench.episodes.locks")


def test_clip_baselines_share_methods_clip_not_ma_fsar():
    """AIM, CLIP-FSAR and zero-shot CLIP use the shared CLIP package, not MA-FSAR's modules."""
    code = ("import sys, fsar_methods.clip_baselines\n"
            "print(sorted(m for m in sys.modules if m.startswith('fsar_methods')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "fsar_methods._clip" in out and "fsar_methods.ma_fsar" not in out, out


def test_fit_runs_the_loop_the_engine_registers():
    """`Method.fit` reaches the engine through the loop it registers, not through an import."""
    from fsar_bench import protocol
    from fsar_bench.engine.train import train_episodic

    assert protocol._installed["training_loop"] is train_episodic


def test_create_method_hands_the_matcher_class_to_the_method():
    import fsar_bench
    from fsar_bench.registry import matcher_class

    method = fsar_bench.create_method("protonet", preset="tiny", matcher="otam")
    assert method.matcher_cls is matcher_class("otam") and type(method.matcher) is method.matcher_cls
