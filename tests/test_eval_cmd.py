"""`fsar-bench eval` (issue #19 §1): existing weights evaluated on the test episodes, and the official
key maps of the authors' releases.

The key-map tests build a state dict under the release's names (the release-side prefixes of each
map, written down from the authors' code: ReverseSuzhou/DMGAL `DMGAL.py` DMAGL, alibaba-mmai-research/
CLIP-FSAR `models/base/few_shot.py` CNN_OTAM_CLIPFSAR, tobyperrett/few-shot-action-recognition
`model.py` CNN_TRX/CNN_OTAM; the same facts as tests/golden/), with the release's extra tensors
(positional-encoding buffers, TRX's tuples and unused norm_v), its checkpoint nesting and its
DataParallel/DDP `module.` prefixes, at our tiny preset's shapes; then load it strictly.
"""

from __future__ import annotations

import json

import pytest
import torch

from fsar_bench.engine.checkpoint import load_official, map_official, official_map
from fsar_bench.errors import FsarError
from fsar_bench.registry import create_method

# method, create kwargs, map name, release keys that must exist (literal names from the authors' code),
# release-only tensors (ignored), wrapper, where DataParallel/DDP put 'module.'
CASES = {
    "dmgal": ("dmgal_ft", {}, "release",
              ["resnet.4.0.conv1.weight", "resnet.1.running_var", "Motion_Excitation.conv3_smallscale4.weight",
               "Motion_Excitation.gamma", "mlp_mix1.fc_t1.weight", "mlp_mix1.fc_d2.bias", "spa_mix2.norm_qk.weight",
               "spa_mix2.gamma1", "spa_mix2.bn3_smallscale2.running_mean"],
              {"Motion_Excitation.pe.pe": (1, 49, 4)}, "model_state_dict", "resnet."),
    "clip_fsar": ("clip_fsar", {}, "release",
                  ["backbone.transformer.resblocks.0.attn.in_proj_weight", "backbone.class_embedding", "scale",
                   "context2.layers.0.0.norm.weight", "context2.layers.0.0.fn.to_q.weight",
                   "context2.layers.0.0.fn.to_out.0.bias", "context2.layers.0.1.net.3.bias"],
                  {}, "model_state", ""),
    "trx": ("protonet", {"matcher": "trx"}, "fsar-lib",
            ["backbone.4.0.conv1.weight", "backbone.7.0.bn2.bias", "transformers.0.k_linear.weight",
             "transformers.1.v_linear.bias", "transformers.0.norm_k.weight"],
            {"transformers.0.norm_v.weight": (1152,), "transformers.0.pe.pe": (1, 12, 192),
             "transformers.0.tuples.0": (2,), "transformers.1.tuples.55": (3,)}, "model_state_dict", ""),
}
SHAPES = {"scale": (1,)}  # the release's scale is a [1] parameter (ours a scalar)


def _release(method, key_map) -> dict[str, torch.Tensor]:
    """Our weights (randomised) under the release's names: each key through the map's prefixes."""
    back = sorted(((ours, up) for up, ours in key_map.renames), key=lambda p: -len(p[0]))
    out = {}
    for key, value in method.state_dict().items():
        head = next(((o, u) for o, u in back if key == o or key.startswith(o + ".")), None)
        if head is None:
            continue  # the `keep` part (frozen CLIP text encoder): not in the release
        up = head[1] + key[len(head[0]):]
        new = torch.randn_like(value) if value.is_floating_point() else value.clone()
        out[up] = new.reshape(SHAPES.get(up, tuple(new.shape)))
    return out


def _checkpoint(case: str):
    name, kwargs, map_name, literal, extras, wrapper, dp = CASES[case]
    method = create_method(name, "tiny", **kwargs)
    key_map = official_map(type(method), map_name)
    state = _release(method, key_map)
    missing = [k for k in literal if k not in state]
    assert not missing, f"the map no longer produces the release's names {missing}"
    state.update({k: torch.zeros(shape) for k, shape in extras.items()})
    if case == "clip_fsar":
        state = {f"module.{k}": v for k, v in state.items()}  # DDP
    elif dp:
        state = {k.replace(dp, dp + "module.", 1) if k.startswith(dp) else k: v for k, v in state.items()}
    return name, kwargs, key_map, {wrapper: state, "epoch": 3}


@pytest.mark.parametrize("case", sorted(CASES))
def test_official_checkpoint_loads_strictly(case, tmp_path, one_thread):
    name, kwargs, key_map, saved = _checkpoint(case)
    torch.save(saved, tmp_path / "release.pth")
    target = create_method(name, "tiny", **kwargs)
    load_official(target, tmp_path / "release.pth", key_map)
    flat = {k.replace("module.", ""): v for k, v in next(v for v in saved.values() if isinstance(v, dict)).items()}
    got = target.state_dict()
    for up, ours in (("resnet.4.0.conv1.weight", "encoder.layer1.0.conv1.weight"),
                     ("spa_mix2.gamma1", "matcher.cmga.lambda2"), ("scale", "text_scale"),
                     ("context2.layers.0.0.fn.to_q.weight", "matcher.module.layers.0.to_q.weight"),
                     ("transformers.1.v_linear.bias", "matcher.value.1.bias"),
                     ("backbone.4.0.conv1.weight", "encoder.layer1.0.conv1.weight")):
        if up in flat and ours in got:
            torch.testing.assert_close(got[ours], flat[up].reshape(got[ours].shape))


@pytest.mark.parametrize("case", sorted(CASES))
def test_official_map_names_missing_and_unexpected_keys(case, one_thread):
    name, kwargs, key_map, saved = _checkpoint(case)
    own = create_method(name, "tiny", **kwargs).state_dict()
    state = next(v for v in saved.values() if isinstance(v, dict))
    dropped = sorted(state)[len(state) // 2]
    fewer = {k: v for k, v in state.items() if k != dropped}
    with pytest.raises(FsarError) as err:
        map_official(fewer, key_map, own, "release.pth")
    msg = str(err.value)
    assert "\n" not in msg and "missing " in msg and "release.pth" in msg
    with pytest.raises(FsarError) as err:
        map_official({**state, "head.fc.weight": torch.zeros(2)}, key_map, own, "release.pth")
    assert "unexpected head.fc.weight" in str(err.value) and "\n" not in str(err.value)


def test_unknown_key_map_lists_the_known_ones():
    from fsar_bench.registry import method_class

    with pytest.raises(FsarError, match="known: release"):
        official_map(method_class("dmgal_ft"), "fsar-lib")


EVAL = ["--dataset", "toy-appearance", "--preset", "tiny", "--way", "2", "--shot", "1", "--episodes", "20"]


def _summary(workdir, pattern: str) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((workdir / "fsar-runs").glob(f"{pattern}/summary.json"))]


def test_eval_a_run_folder_a_state_dict_and_an_official_release(workdir, cli, one_thread, tmp_path):
    res = cli("run", "protonet", *EVAL, "--steps", "3")
    assert res.code == 0, res.err
    run_dir = next((workdir / "fsar-runs").glob("protonet-toy-appearance-*"))
    trained = json.loads((run_dir / "summary.json").read_text())
    res = cli("eval", "protonet", "--weights", run_dir, *EVAL, "--json")
    assert res.code == 0, res.err
    doc = json.loads(res.out)
    assert doc["evaluated_only"] is True and doc["trained"] is False
    origin = doc["weights_origin"]
    assert origin["format"] == "fsar-bench-run" and origin["trained_by"] == trained["mlflow_run_id"]
    from fsar_bench.engine.checkpoint import file_digest

    assert origin["sha256"] == file_digest(run_dir / "final.pt")
    assert doc["accuracy"] == trained["accuracy"]  # the same weights on the same episodes
    # a plain state dict: the same weights, the same result
    plain = tmp_path / "plain.pt"
    torch.save(torch.load(run_dir / "final.pt", weights_only=True)["model"], plain)
    res = cli("eval", "protonet", "--weights", plain, *EVAL, "--json")
    assert res.code == 0, res.err
    doc = json.loads(res.out)
    assert doc["weights_origin"]["format"] == "state-dict" and doc["accuracy"] == trained["accuracy"]
    # an authors' release (OTAM of tobyperrett's code: backbone only)
    _, _, key_map, saved = _checkpoint("trx")
    saved = {"model_state_dict": {k: v for k, v in saved["model_state_dict"].items()
                                  if not k.startswith("transformers.")}}
    torch.save(saved, tmp_path / "otam.pth")
    res = cli("eval", "protonet", "--matcher", "otam", "--weights", tmp_path / "otam.pth", "--official", "fsar-lib",
              *EVAL, "--json")
    assert res.code == 0, res.err
    assert json.loads(res.out)["weights_origin"]["format"] == "official:fsar-lib"


def test_eval_bad_weights_is_a_one_line_error(workdir, cli):
    res = cli("eval", "protonet", "--weights", "nope.pt", *EVAL)
    assert res.code == 2 and "no such file or folder" in res.err and len(res.err.strip().splitlines()) == 1
    res = cli("eval", "protonet", "--weights", workdir, "--official", "fsar-lib", *EVAL)
    assert res.code == 2 and "run folder" in res.err
