"""A hyperparameter a method changes while training is recorded as the value in force."""

from __future__ import annotations

import json

import mlflow
from torch import nn

from fsar_bench import Method, registry
from fsar_bench.data.cards import get_card
from fsar_bench.data.toy import data_version as toy_data_version


class DropsAnOption(Method):
    """Like I2ST on data without masks: asks for an option at build time, turns it off in fit."""

    presets = {"tiny": {"frames": 2, "image_size": 16, "aux_loss": True}}
    train_presets = {"tiny": {"steps": 2}}

    def __init__(self, frames: int = 2, image_size: int = 16, aux_loss: bool = True) -> None:
        super().__init__(frames=frames, image_size=image_size)
        self.proj = nn.Linear(3, 8)
        self.feature_dim = 8
        self.hparams["aux_loss"] = aux_loss

    def embed(self, clips, texts=None):
        return self.proj(clips.mean(dim=(-1, -2)))

    def fit(self, data, config):
        self.hparams["aux_loss"] = False
        return super().fit(data, config)


def test_value_in_force_is_logged_beside_the_requested_one(workdir, cli, tracking_uri):
    registry.register_method("drops_an_option", DropsAnOption)
    try:
        res = cli("run", "drops_an_option", "--dataset", "toy-appearance", "--episodes", "10")
    finally:
        registry._runtime[registry.METHOD_GROUP].pop("drops_an_option")
    assert res.code == 0, res.err
    summary = json.loads(next((workdir / "fsar-runs").glob("drops_an_option-*/summary.json")).read_text())
    assert summary["hparams_changed"] == {"aux_loss": False}
    assert summary["data_version"] == f"toy-appearance/v{toy_data_version(get_card('toy-appearance'))}"  # canonical bytes
    params = mlflow.MlflowClient(tracking_uri).get_run(summary["mlflow_run_id"]).data.params
    assert params["hp.aux_loss"] == "True" and params["hp.aux_loss.effective"] == "False"


def test_threads_setting_is_validated_and_applied(workdir, cli, monkeypatch):
    import torch

    (workdir / "bench.yaml").write_text("threads: 0\n")
    res = cli("run", "protonet", "--dataset", "toy-appearance", "--episodes", "5", "--no-train")
    assert res.code == 2 and "threads" in res.err and "an integer >= 1 or null" in res.err, res.err
    calls: list[int] = []
    monkeypatch.setattr(torch, "set_num_threads", calls.append)
    (workdir / "bench.yaml").write_text("threads: 1\n")
    res = cli("run", "protonet", "--dataset", "toy-appearance", "--episodes", "5", "--no-train")
    assert res.code == 0, res.err
    assert calls[:1] == [1]
