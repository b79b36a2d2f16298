"""Tests of the episode-level matchers against hand computations, the loop references of
`fsar_bench.matchers._loops`, and the invariances every matcher must have."""

from __future__ import annotations

import math

import pytest
import torch

from fsar_bench.errors import FsarError
from fsar_bench.matchers import _loops as loops
from fsar_bench.matchers.bimhm import BiMHM
from fsar_bench.matchers.global_local import GlobalLocal
from fsar_bench.matchers.otam import OTAM, otam_distance, otam_pair_distance
from fsar_bench.matchers.sca import SCA
from fsar_bench.matchers.trx import TRX
from fsar_bench.protocol import Matcher, map_features

DIRECT = {"otam": OTAM, "trx": TRX, "bimhm": BiMHM, "sca": SCA, "global_local": GlobalLocal}
NAMES = list(DIRECT)
T, D, P = 5, 6, 3  # frames, feature width, patches: tiny on purpose


def make(name: str, **kwargs) -> Matcher:
    """Build through the registry (entry points); fall back to the class before `pip install -e .`."""
    from fsar_bench.registry import create_matcher

    if name == "trx":
        kwargs = {"dim": D, "width": 16, **kwargs}
    try:
        matcher = create_matcher(name, **kwargs)
    except FsarError as exc:
        if not str(exc).startswith("unknown matcher"):
            raise
        matcher = DIRECT[name](**kwargs)
    assert isinstance(matcher, DIRECT[name])
    return matcher.double().eval()


def features(name: str, e: int, n: int, gen: torch.Generator, t: int = T) -> object:
    """Random float64 features of the shape the matcher takes: [E, N, ...]."""
    if name == "sca":
        return torch.randn(e, n, t, P, D, generator=gen, dtype=torch.float64)
    frames = torch.randn(e, n, t, D, generator=gen, dtype=torch.float64)
    if name == "global_local":
        return {"frames": frames, "global": torch.randn(e, n, D, generator=gen, dtype=torch.float64)}
    return frames


def episode(name: str, e: int, way: int, shot: int, n_query: int, seed: int = 0):
    """Random episodes with supports in a random order per episode."""
    gen = torch.Generator().manual_seed(seed)
    labels = torch.stack([torch.arange(way * shot)[torch.randperm(way * shot, generator=gen)] % way
                          for _ in range(e)])
    return features(name, e, n_query, gen), features(name, e, way * shot, gen), labels


def loop_reference(name: str, matcher: Matcher, query, support, labels, way: int, **kwargs) -> torch.Tensor:
    if name == "otam":
        return loops.otam_loop(query, support, labels, way, **kwargs)
    if name == "bimhm":
        return loops.bimhm_loop(query, support, labels, way, **kwargs)
    if name == "global_local":
        return loops.global_local_loop(query, support, labels, way, **kwargs)
    if name == "sca":
        return loops.sca_loop(query, support, labels, way)
    return loops.trx_loop(matcher, query, support, labels, way)


def take(x, index: torch.Tensor):
    """Select videos (dim 1) of every feature stream."""
    return map_features(x, lambda t: t.index_select(1, index))


# -- hand-computed cases ---------------------------------------------------------------------


def _sm(lam: float, *xs: float) -> float:
    return -lam * math.log(sum(math.exp(-x / lam) for x in xs))


def test_otam_2x2_by_hand():
    a, b, c, d = 0.3, 1.2, 0.7, 0.1
    lam = 0.1
    # padded rows [0, a, b, 0] and [0, c, d, 0]; first row is a cumulative sum
    c11 = c + _sm(lam, 0.0, a, 0.0)
    c12 = d + _sm(lam, a, c11)
    c13 = 0.0 + _sm(lam, a + b, a + b, c12)
    got = otam_distance(torch.tensor([[a, b], [c, d]], dtype=torch.float64), lam)
    assert got.item() == pytest.approx(c13, abs=1e-12)


def test_otam_2x3_by_hand():
    (a, b, c), (d, e, f) = (0.5, 0.2, 1.5), (0.9, 0.4, 0.05)
    lam = 0.5
    c11 = d + _sm(lam, 0.0, a, 0.0)
    c12 = e + _sm(lam, a, c11)
    c13 = f + _sm(lam, a + b, c12)
    c14 = _sm(lam, a + b + c, a + b + c, c13)
    dist = torch.tensor([[a, b, c], [d, e, f]], dtype=torch.float64)
    assert otam_distance(dist, lam).item() == pytest.approx(c14, abs=1e-12)
    assert otam_pair_distance(dist, lam, bidirectional=True).item() == pytest.approx(
        c14 + loops.otam_dp(dist.T.tolist(), lam), abs=1e-12)


def test_otam_hard_min_limit():
    # lambda -> 0: a diagonal match is free, the anti-diagonal one costs one mismatch
    diag = torch.tensor([[0.0, 1.0], [1.0, 0.0]], dtype=torch.float64)
    assert otam_distance(diag, 1e-4).item() == pytest.approx(0.0, abs=1e-3)
    assert otam_distance(diag.flip(0), 1e-4).item() == pytest.approx(1.0, abs=1e-3)


def test_bimhm_tiny_vectors():
    q = torch.tensor([[1.0, 0.0], [0.0, 1.0]], dtype=torch.float64)  # query frames
    s = torch.tensor([[1.0, 0.0], [1.0, 0.0]], dtype=torch.float64)  # support frames
    delta = 1 - 1 / 1.01  # d(e1, e1) with the 0.01 of the denominator; d(e2, e1) = 1
    expected_mean = (delta + 1) / 2 + delta  # query side mean(delta, 1), support side mean(delta, delta)
    labels = torch.tensor([0])
    assert BiMHM().score(q[None], s[None], labels, 1).item() == pytest.approx(-expected_mean, abs=1e-12)
    assert BiMHM(reduction="sum").score(q[None], s[None], labels, 1).item() == pytest.approx(
        -(delta + 1 + 2 * delta), abs=1e-12)


def test_global_local_sign_and_weight():
    frames = torch.randn(1, 4, 8, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    g = torch.tensor([[1.0, 0.0]], dtype=torch.float64)
    sup = {"frames": torch.cat([frames, frames]), "global": torch.tensor([[1.0, 0.0], [-1.0, 0.0]],
                                                                           dtype=torch.float64)}
    query = {"frames": frames, "global": g}
    labels = torch.tensor([0, 1])
    for w in (1.0, 0.5):
        logits = GlobalLocal(global_weight=w).score(query, sup, labels, 2)[0]
        frame_term = BiMHM().score(frames, frames, torch.tensor([0]), 1)[0, 0]
        # same frames for both classes: the logits differ only by w * (cos = 1) - w * (cos = -1)
        assert logits[0].item() == pytest.approx(frame_term.item() + w, abs=1e-12)
        assert logits[1].item() == pytest.approx(frame_term.item() - w, abs=1e-12)


# -- agreement with the loop references ------------------------------------------------------

REFERENCE_CASES = [
    ("otam", {}), ("otam", {"kshot": "prototype", "lam": 0.5}), ("otam", {"bidirectional": False}),
    ("bimhm", {}), ("bimhm", {"kshot": "distance", "reduction": "sum"}),
    ("global_local", {}), ("global_local", {"kshot": "distance", "global_weight": 0.3, "reduction": "sum"}),
    ("sca", {}), ("trx", {}), ("trx", {"cardinalities": (2,)}),
]


@pytest.mark.parametrize("shot", [1, 3])
@pytest.mark.parametrize("name,kwargs", REFERENCE_CASES, ids=[f"{n}-{i}" for i, (n, _) in enumerate(REFERENCE_CASES)])
def test_agrees_with_loop_reference(name, kwargs, shot):
    way, n_query = 3, 2
    e = 2 if shot == 3 else 3
    matcher = make(name, **kwargs)
    query, support, labels = episode(name, e, way, shot, n_query, seed=shot)
    got = matcher.score_batch(query, support, labels, way)
    ref_kwargs = {k: v for k, v in kwargs.items() if k != "cardinalities"}
    want = loop_reference(name, matcher, query, support, labels, way, **ref_kwargs)
    assert got.shape == (e, n_query, way) and got.dtype == torch.float64
    torch.testing.assert_close(got, want, atol=1e-6, rtol=0)


@pytest.mark.parametrize("shape", [(1, 4), (4, 1), (3, 5), (5, 3), (1, 1), (6, 6)])
def test_otam_recursion_matches_cell_by_cell(shape):
    dist = torch.rand(*shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64) * 2
    for lam in (0.1, 0.5):
        assert otam_distance(dist, lam).item() == pytest.approx(loops.otam_dp(dist.tolist(), lam), abs=1e-10)


# -- properties ------------------------------------------------------------------------------


def test_otam_prefers_the_right_temporal_order():
    gen = torch.Generator().manual_seed(3)
    seq = torch.randn(6, 16, generator=gen, dtype=torch.float64)
    support = torch.stack([seq, seq.flip(0)])  # class 0: same order, class 1: reversed
    for kwargs in ({}, {"bidirectional": False}, {"lam": 0.5}):
        logits = OTAM(**kwargs).score(seq[None], support, torch.tensor([0, 1]), 2)[0]
        assert logits[0] > logits[1]


def test_bimhm_is_symmetric():
    gen = torch.Generator().manual_seed(4)
    a, b = torch.randn(2, 1, T, D, generator=gen, dtype=torch.float64)
    label = torch.tensor([0])
    for reduction in ("mean", "sum"):
        m = BiMHM(reduction=reduction)
        assert m.score(a, b, label, 1).item() == pytest.approx(m.score(b, a, label, 1).item(), abs=1e-12)


@pytest.mark.parametrize("name", NAMES)
def test_invariant_to_support_order_and_class_order(name):
    way, shot, e = 3, 3, 2
    matcher = make(name)
    query, support, labels = episode(name, e, way, shot, 4, seed=5)
    base = matcher.score_batch(query, support, labels, way)
    gen = torch.Generator().manual_seed(6)
    # shuffling the supports (with their labels) changes nothing; shots of a class change order
    order = torch.randperm(way * shot, generator=gen)
    shuffled = matcher.score_batch(query, take(support, order), labels[:, order], way)
    torch.testing.assert_close(shuffled, base, atol=1e-10, rtol=0)
    # renaming class c as perm[c] moves logit column c to column perm[c]
    perm = torch.randperm(way, generator=gen)
    relabelled = matcher.score_batch(query, support, perm[labels], way)
    torch.testing.assert_close(relabelled[..., perm], base, atol=1e-10, rtol=0)


@pytest.mark.parametrize("name", NAMES)
def test_batch_equals_episode_by_episode(name):
    way, shot, e = 3, 2, 3
    matcher = make(name)
    query, support, labels = episode(name, e, way, shot, 2, seed=7)
    batched = matcher.score_batch(query, support, labels, way)
    for i in range(e):
        single = matcher.score(map_features(query, lambda t: t[i]), map_features(support, lambda t: t[i]),
                               labels[i], way)
        torch.testing.assert_close(single, batched[i], atol=1e-10, rtol=0)


def test_otam_float32_large_distances_stay_finite():
    gen = torch.Generator().manual_seed(8)
    frames = 16
    x = torch.randn(1, frames, 32, generator=gen)
    support = torch.cat([-x, x.roll(3, dims=1)])  # anti-correlated: frame distances near 2
    labels = torch.tensor([0, 1])
    logits = OTAM(lam=0.1).score(x, support, labels, 2)
    assert logits.dtype == torch.float32 and torch.isfinite(logits).all()
    assert logits[0, 0] < -20  # the accumulated distance is far past where float32 exp(-C/0.1) underflows
    ref = OTAM(lam=0.1).score(x.double(), support.double(), labels, 2)
    torch.testing.assert_close(logits.double(), ref, atol=1e-4, rtol=1e-5)


def test_otam_gradient_matches_reference_recursion():
    gen = torch.Generator().manual_seed(9)
    base = torch.rand(4, 5, 6, generator=gen, dtype=torch.float64) * 2
    d1 = base.clone().requires_grad_(True)
    d2 = base.clone().requires_grad_(True)
    otam_distance(d1, 0.1).sum().backward()
    loops.otam_reference_recursion(d2, 0.1).sum().backward()
    torch.testing.assert_close(d1.grad, d2.grad, atol=1e-10, rtol=0)


@pytest.mark.parametrize("name", ["otam", "trx"])
def test_gradients_flow(name):
    way, shot = 3, 2
    matcher = make(name).float().train()
    query, support, labels = episode(name, 2, way, shot, 2, seed=10)
    query = query.float().requires_grad_(True)
    support = support.float().requires_grad_(True)
    logits = matcher.score_batch(query, support, labels, way)
    assert logits.dtype == torch.float32
    target = torch.randint(way, logits.shape[:2], generator=torch.Generator().manual_seed(0))
    torch.nn.functional.cross_entropy(logits.flatten(0, 1), target.flatten()).backward()
    for grad in [query.grad, support.grad] + [p.grad for p in matcher.parameters()]:
        assert grad is not None and torch.isfinite(grad).all()
    assert query.grad.abs().sum() > 0 and support.grad.abs().sum() > 0
    if name == "trx":
        assert all(p.grad.abs().sum() > 0 for p in matcher.parameters())


def test_constructor_validation():
    with pytest.raises(ValueError):
        OTAM(kshot="mean")
    with pytest.raises(ValueError):
        BiMHM(reduction="max")
    with pytest.raises(ValueError):
        TRX(dim=4, cardinalities=())
    with pytest.raises(ValueError):  # T = 2 frames cannot form triples
        TRX(dim=4).score(torch.randn(1, 2, 4), torch.randn(1, 2, 4), torch.tensor([0]), 1)
    with pytest.raises(TypeError):
        GlobalLocal().score(torch.zeros(1, 2, 3), torch.zeros(1, 2, 3), torch.tensor([0]), 1)
