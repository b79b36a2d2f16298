"""The random weights and inputs of the golden tests, rebuilt from a seed, and the format of the
`<case>.expected.json` files that hold the authors' outputs for them.

Why: no weights are committed. The tests and the generation scripts (run outside the repository
against the authors' code, tests/golden/UPSTREAM.md) both call `case_tensors`, so both see the
same numbers; `digest` is recorded in each json so that a change here (or in torch's generator)
fails loudly instead of comparing against stale expectations. Standalone (torch only) on purpose:
the generation scripts put this folder on sys.path.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor

HERE = Path(__file__).parent
Spec = tuple[str, tuple[int, ...]]
META = ("case", "upstream", "seed", "sizes", "torch", "seeded_sha256")  # the json's keys besides output groups


@dataclass(frozen=True)
class Case:
    """One golden case: its seed, sizes, the (name, shape) of each float tensor in draw order
    (`weight.<upstream state-dict key>` or `input.<name>`) and how the support labels are made."""

    seed: int
    sizes: dict[str, int | list[int]]
    tensors: tuple[Spec, ...]
    vector_scale: float  # scale of 1-d parameters (biases, norm affine, gates)
    shuffle_support: bool = False
    text_classes: tuple[int, ...] = field(default=())  # CLIP-FSAR: episode class -> text index


def _law(name: str, shape: tuple[int, ...], vector_scale: float) -> tuple[bool, float, float]:
    """(uniform?, scale, shift) of one tensor. Inputs ~ N(0, 1); matrices and kernels 0.3 N(0, 1);
    BatchNorm running means 0.2 N(0, 1) and variances U[0.5, 1.5) (positive); norm and BatchNorm
    scales centred on 1 so that no channel is switched off; other vectors vector_scale * N(0, 1)."""
    if name.startswith("input."):
        return False, 1.0, 0.0
    if name.endswith(".running_var"):
        return True, 1.0, 0.5
    if name.endswith(".running_mean"):
        return False, 0.2, 0.0
    if len(shape) > 1:
        return False, 0.3, 0.0
    owner = name.rsplit(".", 2)[-2]
    is_norm_scale = name.endswith(".weight") and owner.startswith(("bn", "norm"))
    return False, vector_scale, 1.0 if is_norm_scale else 0.0


def seeded(specs: Sequence[Spec], seed: int, vector_scale: float,
           generator: torch.Generator | None = None) -> dict[str, Tensor]:
    """float32 tensors drawn in the order of `specs` from torch.Generator().manual_seed(seed)."""
    gen = generator if generator is not None else torch.Generator().manual_seed(seed)
    out: dict[str, Tensor] = {}
    for name, shape in specs:
        uniform, scale, shift = _law(name, shape, vector_scale)
        draw = torch.rand if uniform else torch.randn
        out[name] = draw(shape, generator=gen, dtype=torch.float32) * scale + shift
    return out


def case_tensors(name: str) -> dict[str, Tensor]:
    """Every seeded tensor of case `name` (weights, inputs, integer labels), keyed as in the json."""
    case = CASES[name]
    gen = torch.Generator().manual_seed(case.seed)
    out = seeded(case.tensors, case.seed, case.vector_scale, gen)
    labels = torch.arange(case.sizes["way"]).repeat_interleave(case.sizes["shot"])
    if case.shuffle_support:
        labels = labels[torch.randperm(labels.numel(), generator=gen)]
    out["input.support_labels"] = labels
    if case.text_classes:
        out["input.support_text_index"] = torch.tensor(case.text_classes)[labels]
    return out


def digest(tensors: dict[str, Tensor]) -> str:
    """sha256 over names, dtypes, shapes and bytes, in name order."""
    h = hashlib.sha256()
    for key in sorted(tensors):
        t = tensors[key].detach().contiguous().cpu()
        h.update(f"{key}|{t.dtype}|{tuple(t.shape)}\n".encode())
        h.update(t.numpy().tobytes())
    return h.hexdigest()


def expected_path(name: str, folder: Path = HERE) -> Path:
    return Path(folder) / f"{name}.expected.json"


def write_expected(name: str, upstream: str, groups: dict[str, dict[str, Tensor]], folder: Path) -> Path:
    """Write the outputs (`groups`: e.g. {'expected': {...}, 'train_stats': {...}}) of case `name`
    as float32 reprs (shortest round-trip form), with the metadata; atomically."""
    import numpy as np

    def values(t: Tensor) -> str:
        flat = t.detach().float().flatten().numpy()
        assert np.isfinite(flat).all(), "non-finite output"
        return "[" + ",".join(str(v) for v in flat) + "]"

    case = CASES[name]
    meta = dict(zip(META, (name, upstream, case.seed, case.sizes, torch.__version__, digest(case_tensors(name)))))
    lines = ["{"] + [f" {json.dumps(k)}: {json.dumps(v)}," for k, v in meta.items()]
    for g, (group, tensors) in enumerate(sorted(groups.items())):
        lines.append(f' {json.dumps(group)}: {{')
        for i, (key, t) in enumerate(sorted(tensors.items())):
            comma = "," if i < len(tensors) - 1 else ""
            lines.append(f'  {json.dumps(key)}: {{"shape": {json.dumps(list(t.shape))}, "values": {values(t)}}}{comma}')
        lines.append(" }" + ("," if g < len(groups) - 1 else ""))
    lines.append("}")
    path = expected_path(name, folder)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text("\n".join(lines) + "\n")
    os.replace(tmp, path)
    return path


def read_expected(name: str, folder: Path = HERE) -> tuple[dict, dict[str, dict[str, Tensor]]]:
    """The json of case `name`: (metadata, {group: {key: float32 tensor of its shape}})."""
    doc = json.loads(expected_path(name, folder).read_text())
    meta = {key: doc.pop(key) for key in META}
    return meta, {group: {key: torch.tensor(t["values"], dtype=torch.float32).reshape(t["shape"])
                          for key, t in tensors.items()} for group, tensors in doc.items()}


# ---- the cases (shapes are those of the authors' modules at these sizes; the generation
# scripts check them against the upstream state dicts) -------------------------------------

def _dmgal_motion(prefix: str, d: int, c: int) -> list[Spec]:
    """DMGAL.py's motion extractor (shared by mSEModule and spa_mix_2), c = d // r channels."""
    specs: list[Spec] = [(f"{prefix}conv.weight", (d, 1, 3, 3)), (f"{prefix}conv1.weight", (c, d, 1, 1))]
    specs += [(f"{prefix}conv2.weight", (c, 1, 3, 3)), (f"{prefix}conv3.weight", (c, c, 1, 1))]
    specs += [(f"{prefix}conv3_smallscale{s}.weight", (c, c, 3, 3)) for s in (2, 4)]
    for bn in ("bn1", "bn3_smallscale2", "bn3_smallscale4"):
        specs += [(f"{prefix}{bn}.{p}", (c,)) for p in ("weight", "bias", "running_mean", "running_var")]
    return specs


def _dmgal() -> Case:
    d, t, h, way, shot, qpc, r = 32, 4, 7, 2, 2, 1, 8
    mixer = [(f"weight.mlp_mix1.fc_{a}{i}.{p}", (n, n) if p == "weight" else (n,))
             for a, n in (("t", t), ("d", d)) for i in (1, 2) for p in ("weight", "bias")]
    specs = ([("weight.Motion_Excitation.gamma", (1,))] + _dmgal_motion("weight.Motion_Excitation.", d, d // r)
             + mixer + [("weight.spa_mix2.gamma1", (1,)), ("weight.spa_mix2.gamma2", (1,)),
                        ("weight.spa_mix2.norm_qk.weight", (d // r,)), ("weight.spa_mix2.norm_qk.bias", (d // r,))]
             + _dmgal_motion("weight.spa_mix2.", d, d // r)
             + [("input.support", (way * shot * t, d, h, h)), ("input.query", (way * qpc * t, d, h, h))])
    sizes = {"D": d, "T": t, "H": h, "r": r, "way": way, "shot": shot, "query_per_class": qpc}
    return Case(seed=20261130, sizes=sizes, tensors=tuple(specs), vector_scale=0.5)


def _fsarlib() -> Case:
    d, t, width, way, shot, qpc, temp_set = 16, 5, 24, 3, 2, 2, [2, 3]
    specs: list[Spec] = [("input.support", (way * shot * t, d)), ("input.query", (way * qpc * t, d))]
    for i, k in enumerate(temp_set):
        for lin in ("k_linear", "v_linear"):
            specs += [(f"weight.transformers.{i}.{lin}.weight", (width, k * d)),
                      (f"weight.transformers.{i}.{lin}.bias", (width,))]
        specs += [(f"weight.transformers.{i}.{norm}.{p}", (width,))
                  for norm in ("norm_k", "norm_v") for p in ("weight", "bias")]
    sizes = {"D": d, "T": t, "width": width, "way": way, "shot": shot, "query_per_class": qpc, "temp_set": temp_set}
    return Case(seed=18, sizes=sizes, tensors=tuple(specs), vector_scale=0.2, shuffle_support=True)


def _clip_fsar() -> Case:
    d, t, ffn, heads, way, shot, qpc, n_text = 32, 4, 64, 8, 3, 2, 2, 7
    p = "weight.context2.layers.0."
    specs: list[Spec] = [("input.support", (way * shot * t, d)), ("input.query", (way * qpc * t, d)),
                         ("input.text_test", (n_text, d)), ("input.text_train", (n_text + 2, d)),
                         (f"{p}0.norm.weight", (d,)), (f"{p}0.norm.bias", (d,))]
    specs += [(f"{p}0.fn.to_{x}.weight", (d, d)) for x in "qkv"]
    specs += [(f"{p}0.fn.to_out.0.weight", (d, d)), (f"{p}0.fn.to_out.0.bias", (d,)),
              (f"{p}1.net.0.weight", (ffn, d)), (f"{p}1.net.0.bias", (ffn,)),
              (f"{p}1.net.3.weight", (d, ffn)), (f"{p}1.net.3.bias", (d,))]
    sizes = {"D": d, "T": t, "ffn": ffn, "heads": heads, "way": way, "shot": shot, "query_per_class": qpc,
             "texts": n_text}
    return Case(seed=2023, sizes=sizes, tensors=tuple(specs), vector_scale=0.3, shuffle_support=True,
                text_classes=(4, 0, 6))


CASES: dict[str, Case] = {"dmgal": _dmgal(), "fsarlib_heads": _fsarlib(), "clip_fsar": _clip_fsar()}
