"""Loading the golden files of tests/golden/ (numbers produced by the authors' released code;
tests/golden/UPSTREAM.md names the repository and commit of each)."""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors import safe_open
from torch import Tensor, nn

GOLDEN = Path(__file__).parent / "golden"


def load_golden(name: str) -> dict[str, dict[str, Tensor]]:
    """tests/golden/NAME.safetensors -> {'weight': ..., 'input': ..., 'expected': ..., ...}, split on
    the first dot of each key; floating tensors are returned as float64 (the goldens were computed
    in float64 from the float32 numbers stored)."""
    groups: dict[str, dict[str, Tensor]] = {}
    with safe_open(str(GOLDEN / f"{name}.safetensors"), "pt") as f:
        for key in f.keys():
            group, _, rest = key.partition(".")
            t = f.get_tensor(key)
            groups.setdefault(group, {})[rest] = t.double() if t.is_floating_point() else t
    return groups


def load_mapped(module: nn.Module, weights: dict[str, Tensor], key_map: dict[str, str], prefix: str) -> None:
    """Load the upstream weights under `prefix` into `module`, renaming by `key_map` (upstream
    submodule prefix -> ours), strictly: every parameter and buffer of ours must be filled and
    every upstream weight used (num_batches_tracked excepted)."""
    mapped: dict[str, Tensor] = {}
    for key, value in weights.items():
        if not key.startswith(prefix):
            continue
        rest = key[len(prefix):]
        head = max((k for k in key_map if rest == k or rest.startswith(k + ".")), key=len, default=None)
        assert head is not None, f"upstream weight {key} has no entry in the key map"
        mapped[key_map[head] + rest[len(head):]] = value
    own = {k for k in module.state_dict() if not k.endswith("num_batches_tracked")}
    assert set(mapped) == own, f"key map mismatch: missing {sorted(own - set(mapped))}, extra {sorted(set(mapped) - own)}"
    module.load_state_dict(mapped, strict=False)


def assert_close(actual: Tensor, expected: Tensor, what: str, tol: float = 1e-5) -> None:
    torch.testing.assert_close(actual.double(), expected.double(), rtol=tol, atol=tol, msg=lambda m: f"{what}: {m}")
