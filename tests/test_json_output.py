"""`--json` of run, compare, profile and list: stdout is one JSON document and nothing else
(progress, banners and messages go to stderr), so scripts and notebooks can `json.loads` it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

TINY_RUN = ["--dataset", "toy-appearance", "--episodes", "50", "--episode-batch", "50"]


def _document(res) -> object:
    assert res.code == 0, res.err
    return json.loads(res.out)  # raises if anything else reached stdout


def test_run_and_compare_json(workdir, cli, one_thread):
    """Two tiny protonet runs on the same 50 episodes (untrained; 2 training episodes), then compared."""
    docs = []
    for extra in (["--no-train"], ["--steps", "2", "--set", "matcher.scale=5.0"]):
        res = cli("run", "protonet", *TINY_RUN, *extra, "--json")
        doc = _document(res)
        assert isinstance(doc, dict) and doc["method"] == "protonet" and doc["episodes"] == 50
        on_disk = json.loads((Path(doc["run_dir"]) / "summary.json").read_text())
        assert doc["accuracy"] == on_disk["accuracy"] and doc["episode_digest"] == on_disk["episode_digest"]
        assert res.err.strip(), "the banner and the progress go to stderr"
        docs.append(doc)
    assert docs[0]["train_steps"] == 0 and docs[1]["train_steps"] == 2
    assert docs[1]["overrides"] == {"matcher.scale": 5.0}  # a matcher hyperparameter, recorded like --set ones
    assert docs[0]["run_key"] != docs[1]["run_key"]

    res = cli("compare", docs[0]["run_dir"], docs[1]["run_dir"], "--n-boot", "200", "--n-perm", "200", "--json")
    doc = _document(res)
    assert doc["episodes"] == 50 and doc["episode_digest"] == docs[0]["episode_digest"]
    assert doc["a"]["summary"]["accuracy"] == docs[0]["accuracy"]
    assert abs(doc["diff"] - (docs[0]["accuracy"] - docs[1]["accuracy"])) < 1e-6
    assert isinstance(doc["significant"], bool) and doc["verdict"].split()[0] in ("A", "B", "no", "not")  # "not testable": 1 seed


def test_profile_json(cli, one_thread):
    res = cli("profile", "protonet", "--preset", "tiny", "--repeats", "1", "--warmup", "0", "--frames", "2",
              "--json")
    doc = _document(res)
    assert doc["preset"] == "tiny" and doc["frames"] == 2 and doc["flops_per_video"] > 0
    first = res.err.splitlines()[0]
    assert first.startswith("profiling protonet, tiny preset"), res.err  # the preset, up front


def test_profile_full_preset_says_so_up_front(cli, one_thread):
    """The default (full) preset names itself and the quick alternative before the minutes of work."""
    res = cli("profile", "protonet", "--set", "backbone=resnet18", "--frames", "1", "--image-size", "32",
              "--repeats", "1", "--warmup", "0", "--device", "cpu")
    assert res.code == 0, res.err
    assert res.err.splitlines()[0].startswith("profiling protonet, full preset (the paper's network; --preset tiny")
    assert "counting FLOPs: 4/4" in res.err and "timed episodes: 1/1" in res.err


@pytest.mark.parametrize("what", ["methods", "matchers", "datasets"])
def test_list_json(cli, what):
    rows = _document(cli("list", what, "--json"))
    assert isinstance(rows, list) and rows
    names = {r["name"] for r in rows}
    expected = {"methods": "protonet", "matchers": "otam", "datasets": "toy-motion"}[what]
    assert expected in names
    if what == "methods":
        proto = next(r for r in rows if r["name"] == "protonet")
        assert proto["origin"] == "built-in" and proto["status"] == "ok" and "tiny" in proto["presets"]
    if what == "matchers":
        otam = next(r for r in rows if r["name"] == "otam")
        assert any(h.startswith("lam=") for h in otam["hyperparameters"])
