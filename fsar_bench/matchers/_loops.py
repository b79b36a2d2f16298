"""Loop reference implementations of the matchers, for tests and benchmarks only.

Each function follows its formula literally, in float64, with no shared code with the
vectorised matchers (own frame distance, own soft-min, own positional encoding, own LayerNorm
and softmax, prototypes summed explicitly): Python loops over episodes, queries, classes and
shots; OTAM, Bi-MHM and global-local loop down to frame pairs and DP cells; TRX and SCA loop
down to query tuples / patches and compute one attention row as a vector operation (TRX maps
the concatenated tuples of one video by one matrix product). Slow by design. Supports are
selected by label, so their order is irrelevant here. All functions return logits [E, Q, way]
in float64.
"""

from __future__ import annotations

import math
from itertools import combinations

import torch
from torch import Tensor


def _softmin(xs: list[float], lam: float) -> float:
    m = min(xs)
    return m - lam * math.log(sum(math.exp(-(x - m) / lam) for x in xs))


def cosine_distance_matrix(a: Tensor, b: Tensor, eps: float = 0.01) -> list[list[float]]:
    """Frames a [L, D], b [M, D] -> D[l][m] = 1 - <a_l, b_m> / (|a_l| |b_m| + eps)."""
    a, b = a.double(), b.double()
    out = []
    for l in range(a.shape[0]):
        row = []
        for m in range(b.shape[0]):
            dot = float(torch.dot(a[l], b[m]))
            row.append(1.0 - dot / (float(a[l].norm()) * float(b[m].norm()) + eps))
        out.append(row)
    return out


def otam_dp(dist: list[list[float]], lam: float = 0.1) -> float:
    """One-direction OTAM on a distance matrix, one cell at a time (pure Python)."""
    n_rows, m = len(dist), len(dist[0])
    d = [[0.0] + list(r) + [0.0] for r in dist]
    c = [[0.0] * (m + 2) for _ in range(n_rows)]
    for j in range(1, m + 2):
        c[0][j] = d[0][j] + c[0][j - 1]
    for i in range(1, n_rows):
        c[i][0] = 0.0
        c[i][1] = d[i][1] + _softmin([c[i - 1][0], c[i - 1][1], c[i][0]], lam)
        for j in range(2, m + 1):
            c[i][j] = d[i][j] + _softmin([c[i - 1][j - 1], c[i][j - 1]], lam)
        c[i][m + 1] = d[i][m + 1] + _softmin([c[i - 1][m], c[i - 1][m + 1], c[i][m]], lam)
    return c[n_rows - 1][m + 1]


def otam_reference_recursion(dists: Tensor, lam: float = 0.1) -> Tensor:
    """The authors' style of OTAM: cells visited one by one in Python, batched over pairs.

    dists [..., L, M] -> [...]. Differentiable; used to time and to check gradients.
    """
    d = torch.nn.functional.pad(dists, (1, 1))
    n_rows, n_cols = d.shape[-2:]
    rows = [[None] * n_cols for _ in range(n_rows)]
    rows[0][0] = torch.zeros_like(d[..., 0, 0])
    for j in range(1, n_cols):
        rows[0][j] = d[..., 0, j] + rows[0][j - 1]

    def smin(*xs: Tensor) -> Tensor:
        return -lam * torch.logsumexp(-torch.stack(xs, dim=-1) / lam, dim=-1)

    for i in range(1, n_rows):
        rows[i][0] = torch.zeros_like(d[..., 0, 0])
        rows[i][1] = d[..., i, 1] + smin(rows[i - 1][0], rows[i - 1][1], rows[i][0])
        for j in range(2, n_cols - 1):
            rows[i][j] = d[..., i, j] + smin(rows[i - 1][j - 1], rows[i][j - 1])
        j = n_cols - 1
        rows[i][j] = d[..., i, j] + smin(rows[i - 1][j - 1], rows[i - 1][j], rows[i][j - 1])
    return rows[n_rows - 1][n_cols - 1]


def _class_members(labels: Tensor, c: int) -> list[int]:
    return [i for i in range(labels.shape[0]) if int(labels[i]) == c]


def _mean_of(videos: list[Tensor]) -> Tensor:
    total = videos[0].double().clone()
    for v in videos[1:]:
        total = total + v.double()
    return total / len(videos)


def _kshot_scores(query: Tensor, support: Tensor, labels: Tensor, way: int, kshot: str, pair_logit) -> Tensor:
    """Apply `pair_logit(q_video, s_video) -> float` per (episode, query, class) under a k-shot rule."""
    e_n, q_n = query.shape[0], query.shape[1]
    out = torch.zeros(e_n, q_n, way, dtype=torch.float64)
    for e in range(e_n):
        for qi in range(q_n):
            for c in range(way):
                members = [support[e, i] for i in _class_members(labels[e], c)]
                if kshot == "prototype":
                    out[e, qi, c] = pair_logit(query[e, qi], _mean_of(members))
                else:
                    out[e, qi, c] = sum(pair_logit(query[e, qi], s) for s in members) / len(members)
    return out


def otam_loop(query: Tensor, support: Tensor, labels: Tensor, way: int, lam: float = 0.1,
              bidirectional: bool = True, kshot: str = "distance") -> Tensor:
    def pair(q: Tensor, s: Tensor) -> float:
        d = cosine_distance_matrix(q, s)
        total = otam_dp(d, lam)
        if bidirectional:
            total += otam_dp([list(col) for col in zip(*d)], lam)
        return -total

    return _kshot_scores(query, support, labels, way, kshot, pair)


def bimhm_pair(q: Tensor, s: Tensor, reduction: str = "mean") -> float:
    d = cosine_distance_matrix(q, s)
    q_side = [min(row) for row in d]
    s_side = [min(d[l][m] for l in range(len(d))) for m in range(len(d[0]))]
    if reduction == "mean":
        return sum(q_side) / len(q_side) + sum(s_side) / len(s_side)
    return sum(q_side) + sum(s_side)


def bimhm_loop(query: Tensor, support: Tensor, labels: Tensor, way: int, reduction: str = "mean",
               kshot: str = "prototype") -> Tensor:
    return _kshot_scores(query, support, labels, way, kshot, lambda q, s: -bimhm_pair(q, s, reduction))


def _cosine(a: Tensor, b: Tensor) -> float:
    a, b = a.double(), b.double()
    return float(torch.dot(a, b)) / (float(a.norm()) * float(b.norm()))


def global_local_loop(query: dict[str, Tensor], support: dict[str, Tensor], labels: Tensor, way: int,
                      global_weight: float = 1.0, reduction: str = "mean", kshot: str = "prototype") -> Tensor:
    qf, qg, sf, sg = query["frames"], query["global"], support["frames"], support["global"]
    e_n, q_n = qf.shape[0], qf.shape[1]
    out = torch.zeros(e_n, q_n, way, dtype=torch.float64)
    for e in range(e_n):
        for qi in range(q_n):
            for c in range(way):
                members = _class_members(labels[e], c)
                if kshot == "prototype":
                    frames = _mean_of([sf[e, i] for i in members])
                    glob = _mean_of([sg[e, i] for i in members])
                    out[e, qi, c] = -bimhm_pair(qf[e, qi], frames, reduction) + global_weight * _cosine(qg[e, qi], glob)
                else:
                    vals = [-bimhm_pair(qf[e, qi], sf[e, i], reduction) + global_weight * _cosine(qg[e, qi], sg[e, i])
                            for i in members]
                    out[e, qi, c] = sum(vals) / len(vals)
    return out


def _softmax(scores: Tensor) -> Tensor:
    weights = torch.exp(scores - scores.max())
    return weights / weights.sum()


def _positional_encoding(pos: int, dim: int, scale: float) -> Tensor:
    vals = []
    for i in range(dim):
        freq = math.exp((i - i % 2) * -(math.log(10000.0) / dim))
        vals.append(scale * (math.sin(pos * freq) if i % 2 == 0 else math.cos(pos * freq)))
    return torch.tensor(vals, dtype=torch.float64)


def _layer_norm(x: Tensor, weight: Tensor, bias: Tensor, eps: float) -> Tensor:
    mean = x.mean()
    var = ((x - mean) ** 2).mean()
    return (x - mean) / torch.sqrt(var + eps) * weight + bias


def trx_loop(module, query: Tensor, support: Tensor, labels: Tensor, way: int, pe_scale: float = 0.1) -> Tensor:
    """TRX with the weights of `module` (a `TRX`, dropout inactive), by loops.

    Loops over episodes, queries, classes and query tuples; a tuple's feature is the explicit
    concatenation of its frames, mapped by the full (c*D -> width) linear layers; the prototype
    of a query tuple is the attention-weighted sum of the class's support values.
    """
    e_n, q_n, frames, dim = query.shape
    pes = [_positional_encoding(t, dim, pe_scale) for t in range(frames)]
    out = torch.zeros(e_n, q_n, way, dtype=torch.float64)
    with torch.no_grad():
        for ci, card in enumerate(module.cardinalities):
            wk, bk = module.key[ci].weight.double(), module.key[ci].bias.double()
            wv, bv = module.value[ci].weight.double(), module.value[ci].bias.double()
            norm = module.key_norm[ci]
            gamma, beta = norm.weight.double(), norm.bias.double()
            width = wk.shape[0]
            tuples = list(combinations(range(frames), card))

            def keys_values(video: Tensor) -> tuple[list[Tensor], list[Tensor]]:
                concat = torch.stack([torch.cat([video[t].double() + pes[t] for t in tup]) for tup in tuples])
                keys_lin, values = concat @ wk.T + bk, concat @ wv.T + bv  # one linear map per tuple row
                return [_layer_norm(k, gamma, beta, norm.eps) for k in keys_lin], list(values)

            for e in range(e_n):
                support_kv = {i: keys_values(support[e, i]) for i in range(support.shape[1])}
                for qi in range(q_n):
                    q_keys, q_values = keys_values(query[e, qi])
                    for c in range(way):
                        members = _class_members(labels[e], c)
                        class_keys = torch.stack([k for i in members for k in support_kv[i][0]])
                        class_values = torch.stack([v for i in members for v in support_kv[i][1]])
                        total = 0.0
                        for q_key, q_val in zip(q_keys, q_values):
                            weights = _softmax(class_keys @ q_key / math.sqrt(width))  # all shots x tuples
                            proto = (weights[:, None] * class_values).sum(dim=0)
                            total += float(((q_val - proto) ** 2).sum())
                        out[e, qi, c] += -(total / len(tuples)) / len(module.cardinalities)
    return out


def sca_loop(query: Tensor, support: Tensor, labels: Tensor, way: int) -> Tensor:
    """SCA by loops over episodes, queries, classes, frames and query patches."""
    e_n, q_n, frames, patches, dim = query.shape
    out = torch.zeros(e_n, q_n, way, dtype=torch.float64)
    for e in range(e_n):
        for qi in range(q_n):
            for c in range(way):
                members = _class_members(labels[e], c)
                total = 0.0
                for t in range(frames):
                    keys = torch.stack([support[e, i, t, p].double() for i in members for p in range(patches)])
                    for p in range(patches):
                        x = query[e, qi, t, p].double()
                        weights = _softmax(keys @ x / math.sqrt(dim))  # all shots x patches at frame t
                        proto = (weights[:, None] * keys).sum(dim=0)
                        total += float(((x - proto) ** 2).sum())
                out[e, qi, c] = -total / (frames * frames * patches)
    return out
