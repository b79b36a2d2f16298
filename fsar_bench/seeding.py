"""Seeds derived from names, so that every random draw of a run is a function of what it is.

A training episode, its augmentations and the torch RNG of a training step are each seeded from
(run seed, purpose, index) through SHA-256, never from a global counter: any worker count, any
number of ranks and a resumed run therefore draw exactly what the uninterrupted run drew.
The toy datasets are generated from such seeds too (`seed_int(..., sep=':')`, `seeded_order`), so
their bytes are the same on every machine.
"""

from __future__ import annotations

import hashlib

TORCH_SEED_MODULUS = 2**63  # torch.manual_seed takes a signed 64-bit value


def seed_int(*parts: object, sep: str = "/") -> int:
    """A 64-bit integer seed from the parts, joined by `sep` (e.g. seed_int('train/0', 'augment', 7))."""
    return int.from_bytes(hashlib.sha256(sep.join(map(str, parts)).encode()).digest()[:8], "big")


def torch_seed(*parts: object) -> int:
    """`seed_int` folded into the range `torch.manual_seed` accepts."""
    return seed_int(*parts) % TORCH_SEED_MODULUS


def seed_torch(*parts: object) -> None:
    """Seed torch's global RNG from the parts (imports torch only when called)."""
    import torch

    torch.manual_seed(torch_seed(*parts))


def seeded_order(seed: str, items: list) -> list:
    """A seeded, library-independent shuffle: `items` sorted by SHA-256 of '<seed>:<item>'."""
    return sorted(items, key=lambda it: hashlib.sha256(f"{seed}:{it}".encode()).digest())
