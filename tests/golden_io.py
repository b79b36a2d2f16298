"""The golden cases of tests/golden/: seeded weights and inputs (tests/golden/seeded.py) and the
outputs the authors' released code computed from them (`<case>.expected.json`; tests/golden/
UPSTREAM.md names the repository and commit of each and how the numbers are made)."""

from __future__ import annotations

import torch
from golden.seeded import case_tensors, digest, read_expected
from torch import Tensor, nn


def load_golden(name: str) -> dict[str, dict[str, Tensor]]:
    """Case NAME as {'weight': ..., 'input': ..., 'expected': ..., ...} (keys split on the first dot):
    weights and inputs rebuilt from the seed, outputs read from NAME.expected.json; floating tensors
    as float64 (the outputs were computed in float64 from the float32 seeded numbers). Refuses to
    compare when the seeded numbers are not those the json was computed from."""
    seeded = case_tensors(name)
    meta, outputs = read_expected(name)
    assert digest(seeded) == meta["seeded_sha256"], (
        f"tests/golden/seeded.py no longer gives the numbers {name}.expected.json was computed from: "
        "regenerate the json (tests/golden/UPSTREAM.md) or restore the generator")
    groups: dict[str, dict[str, Tensor]] = {}
    for key, t in seeded.items():
        group, _, rest = key.partition(".")
        groups.setdefault(group, {})[rest] = t.double() if t.is_floating_point() else t
    for group, tensors in outputs.items():
        groups[group] = {k: v.double() for k, v in tensors.items()}
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
