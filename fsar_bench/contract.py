"""Contract tests any registered method can be run through (`fsar-bench check-plugin NAME`).

The evaluator relies on a few properties no type checker can see: `embed` gives a video the same
features whatever else is in the batch (so each distinct video is embedded once and cached across
episodes), scores do not depend on the order of the supports within a class, relabelling the
classes permutes the logit columns, a batch of episodes scores like its episodes one by one, and
a run is reproducible under a seed on CPU. `check_method` checks them on random inputs with the
method's `tiny` preset (random weights, a few seconds on a CPU), plus a forward pass and one
training step.

Each check gives a `CheckResult` (pass / fail / skip with a one-line detail); a failing check never
stops the following ones, except those that need its output (they are skipped).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from torch import nn

from fsar_bench.errors import FsarError, suggest, unknown
from fsar_bench.protocol import EpisodeBatch, Features, Method, feature_batch_size, map_features
from fsar_bench.registry import (MATCHER_PREFIX, create_method, list_matchers, list_methods, matcher_class,
                                 method_class, random_init_overrides, resolve_hparams)

# Tolerances: features of one video embedded in batches of different sizes may differ by float32
# rounding (batch-size dependent kernels); permuting supports within a class only reorders sums.
EMBED_RTOL, EMBED_ATOL = 1e-4, 1e-5
LOGITS_ATOL = 1e-5
CLASS_NAMES = ("archery", "bowling", "diving", "fencing", "juggling balls", "punch", "rowing", "surfing")


@dataclass
class CheckResult:
    """One contract check: `status` is 'pass', 'fail' or 'skip'; `detail` is one line."""

    name: str
    status: str
    detail: str = ""
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        """True unless the check failed (a skipped check does not fail the contract)."""
        return self.status != "fail"


# name -> what it checks (in the order they run; shown by `fsar-bench check-plugin --help` and the README)
CHECKS: dict[str, str] = {
    "card": "Method.card() loads (card.yaml beside the method, if any)",
    "build": "the preset builds with random weights; feature_dim and weights_source are set",
    "embed shapes": "embed gives floating, finite features with the batch first (B videos -> B rows)",
    "embed independent": "a video's features do not depend on the other videos of the batch",
    "logits shape": "score gives floating, finite logits [Q, way]",
    "episode batching": "score_batch over E episodes equals scoring them one by one",
    "support order": "permuting the supports within a class leaves the logits unchanged",
    "class order": "permuting the classes permutes the logit columns",
    "deterministic": "the same seed builds the same model and gives identical logits (CPU)",
    "training step": "training_loss gives a finite scalar loss and one optimiser step changes a trainable parameter",
}


class ContractError(AssertionError):
    """A contract violation (its message is the check's detail)."""


class MatcherHost(Method):
    """The method a matcher is checked under when no method is named: each frame's mean colour
    (or, with `patches` > 0, that of each cell of a patches x 1 grid) through one linear layer, so
    features are [B, T, D] (or [B, T, P, D]) and every failure is the matcher's."""

    presets = {"tiny": {}, "full": {}}
    train_presets = {"tiny": {"steps": 1, "lr": 1e-2}, "full": {"steps": 1, "lr": 1e-2}}

    def __init__(self, *, frames: int = 4, image_size: int = 16, width: int = 16, patches: int = 0) -> None:
        super().__init__(frames=frames, image_size=image_size)
        self.patches = int(patches)
        self.proj = nn.Linear(3, width)
        self.feature_dim = width

    def embed(self, clips: Tensor, texts: Sequence[str] | None = None) -> Tensor:
        if not self.patches:
            return self.proj(clips.mean(dim=(-1, -2)))  # [B, T, D]
        cells = torch.nn.functional.adaptive_avg_pool2d(clips.flatten(0, 1), (self.patches, 1))  # [B*T, 3, P, 1]
        cells = cells.flatten(2).transpose(1, 2)  # [B*T, P, 3]
        return self.proj(cells).view(*clips.shape[:2], self.patches, -1)  # [B, T, P, D]


@dataclass
class _Ctx:
    name: str
    preset: str
    matcher: str | None
    seed: int
    way: int
    shot: int
    query: int
    overrides: dict[str, Any] = field(default_factory=dict)
    host: dict[str, Any] | None = None  # checking a matcher under MatcherHost(**host)
    method: Method | None = None
    batch: EpisodeBatch | None = None
    support: Features | None = None
    query_feats: Features | None = None
    logits: Tensor | None = None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def _tensors(feats: Features) -> dict[str, Tensor]:
    if isinstance(feats, Tensor):
        return {"": feats}
    if not isinstance(feats, dict) and not hasattr(feats, "items"):
        raise ContractError(f"features are a {type(feats).__name__}, not a tensor or a mapping of tensors")
    out = {}
    for key, value in feats.items():
        if not isinstance(value, Tensor):
            raise ContractError(f"feature {key!r} is a {type(value).__name__}, not a tensor")
        out[str(key)] = value
    return out


def _label(key: str) -> str:
    return f"feature {key!r}" if key else "features"


def _max_diff(a: Tensor, b: Tensor) -> float:
    return float((a.double() - b.double()).abs().max()) if a.numel() else 0.0


def _episode(method: Method, way: int, shot: int, query: int, seed: int) -> EpisodeBatch:
    """A random class-major episode in the method's input format (plus masks if it asks for them)."""
    g = torch.Generator().manual_seed(seed)
    shape = (method.frames, 3, method.image_size, method.image_size)
    n_s, n_q = way * shot, way * query
    names = [CLASS_NAMES[i % len(CLASS_NAMES)] + ("" if i < len(CLASS_NAMES) else f" {i}") for i in range(way)]
    extras = {}
    if "masks" in method.extra_inputs:
        mask_shape = (method.frames, method.image_size, method.image_size)
        extras = {"support_masks": torch.rand(n_s, *mask_shape, generator=g).round(),
                  "query_masks": torch.rand(n_q, *mask_shape, generator=g).round()}
    return EpisodeBatch(
        support=torch.randn(n_s, *shape, generator=g), support_labels=torch.arange(way).repeat_interleave(shot),
        query=torch.randn(n_q, *shape, generator=g), query_labels=torch.arange(way).repeat_interleave(query),
        way=way, shot=shot, class_names=names, global_labels=torch.arange(way), split_class_names=names,
        extras=extras)


def _build(ctx: _Ctx) -> Method:
    torch.manual_seed(ctx.seed)
    if ctx.host is None:
        return create_method(ctx.name, ctx.preset, matcher=ctx.matcher, **ctx.overrides)
    method = MatcherHost(**ctx.host)
    method.preset = ctx.preset
    kwargs = {k[len(MATCHER_PREFIX):]: v for k, v in ctx.overrides.items() if k.startswith(MATCHER_PREFIX)}
    method.set_matcher(ctx.matcher, matcher_class(ctx.matcher), **kwargs)
    return method


def _method_cls(ctx: _Ctx) -> type[Method]:
    return MatcherHost if ctx.host is not None else method_class(ctx.name)


def _embed(method: Method, clips: Tensor, texts: Sequence[str] | None) -> Features:
    with torch.no_grad():
        return method.embed(clips, list(texts) if texts is not None else None)


def _support_texts(method: Method, batch: EpisodeBatch, idx: Sequence[int] | None = None) -> list[str] | None:
    if not method.uses_text:
        return None
    texts = batch.support_texts
    return texts if idx is None else [texts[i] for i in idx]


def _score(method: Method, query: Features, support: Features, labels: Tensor, way: int,
           names: Sequence[str]) -> Tensor:
    with torch.no_grad():
        return method.score(query, support, labels, way, class_names=list(names))


def _take(feats: Features, idx: Sequence[int] | Tensor) -> Features:
    index = torch.as_tensor(list(idx) if not isinstance(idx, Tensor) else idx, dtype=torch.long)
    return map_features(feats, lambda t: t.index_select(0, index))


# -- the checks ---------------------------------------------------------------------------------------
def _check_card(ctx: _Ctx) -> str:
    if ctx.host is not None:
        return "skip: a matcher has no card (cards describe methods)"
    card = method_class(ctx.name).card()
    return f"card {card.name!r}" + (f" ({card.paper})" if card.paper else " (no card.yaml: defaults)")


def _check_build(ctx: _Ctx) -> str:
    method = _build(ctx)
    if not isinstance(method, Method):
        raise ContractError(f"create_method returned a {type(method).__name__}, not a fsar_bench.Method")
    if not isinstance(method.feature_dim, int) or method.feature_dim <= 0:
        raise ContractError(f"feature_dim is {method.feature_dim!r}; set self.feature_dim (an int > 0) in __init__")
    source = method.weights_source
    if not (isinstance(source, str) and (source == "random-init" or source.startswith(("file:", "hub:")))):
        raise ContractError(f"weights_source is {source!r}; use 'random-init', 'file:<digest>' or 'hub:<tag>'")
    if getattr(method, "matcher_name", None) is None:
        raise ContractError("no matcher was set (call super().__init__ and keep build_matcher returning a Matcher)")
    method.eval()
    ctx.method = method
    ctx.batch = _episode(method, ctx.way, ctx.shot, ctx.query, ctx.seed)
    counts = method.parameter_counts()
    return (f"{counts['params_total']:,} parameters ({counts['params_trainable']:,} trainable), matcher "
            f"{method.matcher_name}, {method.frames} frames of {method.image_size}px, weights {source}")


def _check_embed_shapes(ctx: _Ctx) -> str:
    method, batch = ctx.method, ctx.batch
    support = _embed(method, batch.support, _support_texts(method, batch))
    query = _embed(method, batch.query, None)
    shapes = []
    for role, feats, n in (("support", support, batch.support.shape[0]), ("query", query, batch.query.shape[0])):
        tensors = _tensors(feats)
        if not tensors:
            raise ContractError(f"embed of the {role} videos returned no tensors")
        for key, t in tensors.items():
            if t.dim() == 0 or t.shape[0] != n:
                raise ContractError(f"embed of {n} {role} videos gave {_label(key)} of shape {tuple(t.shape)}: "
                                    f"the batch must come first ([{n}, ...])")
            if not t.is_floating_point():
                raise ContractError(f"{_label(key)} of the {role} videos has dtype {t.dtype}, not a floating type")
            if not torch.isfinite(t).all():
                raise ContractError(f"{_label(key)} of the {role} videos has NaN or inf values")
        if feature_batch_size(feats) != n:
            raise ContractError(f"feature_batch_size gives {feature_batch_size(feats)} for {n} {role} videos")
        if role == "query":
            shapes = [f"{k or 'features'} {list(t.shape[1:])} {str(t.dtype).replace('torch.', '')}"
                      for k, t in tensors.items()]
    if sorted(_tensors(support)) != sorted(_tensors(query)):
        raise ContractError(f"support and query features have different keys ({sorted(_tensors(support))} vs "
                            f"{sorted(_tensors(query))})")
    ctx.support, ctx.query_feats = support, query
    return "per video: " + ", ".join(shapes)


def _compare_features(a: Features, b: Features, what: str) -> float:
    ta, tb = _tensors(a), _tensors(b)
    worst = 0.0
    for key in ta:
        x, y = ta[key], tb[key]
        if x.shape != y.shape:
            raise ContractError(f"{_label(key)} of {what} has shape {tuple(y.shape)}, expected {tuple(x.shape)}")
        if not torch.allclose(x, y, rtol=EMBED_RTOL, atol=EMBED_ATOL):
            raise ContractError(f"{_label(key)} of {what} differ by up to {_max_diff(x, y):.3g}: embed must not "
                                "depend on the other videos of the batch (no batch statistics, no attention "
                                "across videos: move episode-level modules into the matcher)")
        worst = max(worst, _max_diff(x, y))
    return worst


def _check_embed_independent(ctx: _Ctx) -> str:
    method, batch = ctx.method, ctx.batch
    n_q, n_s = batch.query.shape[0], batch.support.shape[0]
    # query 0 alone, and query 0 among other videos in another order
    alone = _embed(method, batch.query[:1], None)
    worst = _compare_features(_take(ctx.query_feats, [0]), alone, "a query video embedded alone vs in its batch")
    others = torch.cat([batch.support[: max(1, n_s // 2)], batch.query.flip(0)])
    mixed = _embed(method, others, None)
    pos = max(1, n_s // 2) + n_q - 1  # where query 0 ended up
    worst = max(worst, _compare_features(_take(ctx.query_feats, [0]), _take(mixed, [pos]),
                                         "a query video embedded in another batch"))
    # a support video (with its class text, for text-conditioned methods), alone
    texts = _support_texts(method, batch, [n_s - 1])
    alone_s = _embed(method, batch.support[n_s - 1:], texts)
    worst = max(worst, _compare_features(_take(ctx.support, [n_s - 1]), alone_s,
                                         "a support video embedded alone vs in its batch"))
    return f"max difference {worst:.2g} (tolerance rtol {EMBED_RTOL:g}, atol {EMBED_ATOL:g})"


def _check_logits_shape(ctx: _Ctx) -> str:
    method, batch = ctx.method, ctx.batch
    logits = _score(method, ctx.query_feats, ctx.support, batch.support_labels, batch.way, batch.class_names)
    if not isinstance(logits, Tensor):
        raise ContractError(f"score returned a {type(logits).__name__}, not a tensor")
    q = batch.query.shape[0]
    if tuple(logits.shape) != (q, batch.way):
        raise ContractError(f"logits of {q} queries in a {batch.way}-way episode have shape {tuple(logits.shape)}, "
                            f"expected ({q}, {batch.way}) = [Q, way]")
    if not logits.is_floating_point():
        raise ContractError(f"logits have dtype {logits.dtype}, not a floating type")
    if not torch.isfinite(logits).all():
        raise ContractError("logits have NaN or inf values")
    ctx.logits = logits
    return f"[{q}, {batch.way}] {str(logits.dtype).replace('torch.', '')}"


def _permuted_classes(ctx: _Ctx) -> tuple[list[int], Features, Tensor, list[str]]:
    """The episode with its classes relabelled by `perm` (class c -> perm[c]), supports class-major again."""
    batch, way, shot = ctx.batch, ctx.batch.way, ctx.batch.shot
    perm = [(c + 1) % way for c in range(way)][::-1]  # neither the identity nor a rotation
    inverse = [perm.index(c) for c in range(way)]
    order = [inverse[c] * shot + s for c in range(way) for s in range(shot)]  # new class c = old class inverse[c]
    labels = torch.arange(way).repeat_interleave(shot)
    names = [batch.class_names[inverse[c]] for c in range(way)]
    return perm, _take(ctx.support, order), labels, names


def _check_episode_batching(ctx: _Ctx) -> str:
    method, batch = ctx.method, ctx.batch
    _, support_b, labels_b, names_b = _permuted_classes(ctx)
    query_b = _take(ctx.query_feats, list(range(batch.query.shape[0]))[::-1])
    single_b = _score(method, query_b, support_b, labels_b, batch.way, names_b)
    stack = lambda a, b: torch.stack([a, b])  # noqa: E731
    q = {k: stack(a, b) for (k, a), b in zip(_tensors(ctx.query_feats).items(), _tensors(query_b).values())}
    s = {k: stack(a, b) for (k, a), b in zip(_tensors(ctx.support).items(), _tensors(support_b).values())}
    unwrap = (lambda d: d[""]) if isinstance(ctx.query_feats, Tensor) else (lambda d: d)  # noqa: E731
    with torch.no_grad():
        both = method.score_batch(unwrap(q), unwrap(s), torch.stack([batch.support_labels, labels_b]), batch.way,
                                  class_names=[list(batch.class_names), names_b])
    expected = torch.stack([ctx.logits, single_b])
    if tuple(both.shape) != tuple(expected.shape):
        raise ContractError(f"score_batch of 2 episodes gave shape {tuple(both.shape)}, expected "
                            f"{tuple(expected.shape)} = [E, Q, way]")
    if not torch.allclose(both, expected, atol=LOGITS_ATOL):
        raise ContractError(f"score_batch of 2 episodes differs from scoring them one by one by up to "
                            f"{_max_diff(both, expected):.3g}: episodes must not interact")
    return f"max difference {_max_diff(both, expected):.2g}"


def _check_support_order(ctx: _Ctx) -> str:
    method, batch = ctx.method, ctx.batch
    way, shot = batch.way, batch.shot
    if shot < 2:
        return "skip: needs 2 or more shots"
    order = [c * shot + s for c in range(way) for s in reversed(range(shot))]  # still class-major
    labels = batch.support_labels[order]
    logits = _score(method, ctx.query_feats, _take(ctx.support, order), labels, way, batch.class_names)
    if not torch.allclose(logits, ctx.logits, atol=LOGITS_ATOL):
        raise ContractError(f"reversing the shots of each class changed the logits by up to "
                            f"{_max_diff(logits, ctx.logits):.3g} (atol 1e-05): a class's supports are a set "
                            "(average or match them symmetrically, e.g. via fsar_bench.protocol.group_by_class)")
    return f"max difference {_max_diff(logits, ctx.logits):.2g}"


def _check_class_order(ctx: _Ctx) -> str:
    method, batch = ctx.method, ctx.batch
    perm, support, labels, names = _permuted_classes(ctx)
    logits = _score(method, ctx.query_feats, support, labels, batch.way, names)
    expected = ctx.logits[:, [perm.index(c) for c in range(batch.way)]]  # new column c = old column inverse[c]
    if tuple(logits.shape) != tuple(expected.shape) or not torch.allclose(logits, expected, atol=LOGITS_ATOL):
        diff = _max_diff(logits, expected) if logits.shape == expected.shape else float("nan")
        raise ContractError(f"relabelling the classes {perm} did not permute the logit columns (max difference "
                            f"{diff:.3g}, atol 1e-05): column c must score the class with label c")
    return f"max difference {_max_diff(logits, expected):.2g}"


def _check_deterministic(ctx: _Ctx) -> str:
    method, batch = _build(ctx), ctx.batch
    method.eval()
    support = _embed(method, batch.support, _support_texts(method, batch))
    query = _embed(method, batch.query, None)
    logits = _score(method, query, support, batch.support_labels, batch.way, batch.class_names)
    if not torch.equal(logits, ctx.logits):
        diff = _max_diff(logits, ctx.logits) if logits.shape == ctx.logits.shape else float("nan")
        raise ContractError(f"two builds under the same seed gave logits differing by up to {diff:.3g}: draw all "
                            "randomness from torch's global RNG (no unseeded numpy/random, no time-based seeds)")
    return "identical logits from two builds under seed " + str(ctx.seed)


def _check_training_step(ctx: _Ctx) -> str:
    cls = _method_cls(ctx)
    recipe = cls.train_presets.get(ctx.preset, {})
    if recipe.get("steps", 1) == 0:
        return f"skip: the {ctx.preset} preset does not train (train_presets steps 0)"
    method, batch = ctx.method, ctx.batch
    params = {n: p for n, p in method.named_parameters() if p.requires_grad}
    if not params:
        raise ContractError("no trainable parameter (requires_grad) although the preset trains")
    before = {n: p.detach().clone() for n, p in params.items()}
    method.train()
    try:
        torch.manual_seed(ctx.seed)
        optim = method.configure_optimizer(float(recipe.get("lr", 1e-3)), float(recipe.get("weight_decay", 0.0)))
        out = method.training_loss(batch)
        if not isinstance(out, dict) or "loss" not in out:
            raise ContractError(f"training_loss returned {type(out).__name__} without a 'loss' entry; return "
                                "{'loss': ..., other scalars}")
        loss = out["loss"]
        if not isinstance(loss, Tensor) or loss.dim() != 0:
            shape = tuple(loss.shape) if isinstance(loss, Tensor) else type(loss).__name__
            raise ContractError(f"the loss is {shape}, not a scalar tensor")
        if not torch.isfinite(loss):
            raise ContractError(f"the loss is {loss.item()}")
        if not loss.requires_grad:
            raise ContractError("the loss does not require grad (computed under no_grad, or from detached tensors?)")
        optim.zero_grad(set_to_none=True)
        loss.backward()
        optim.step()
    finally:
        method.eval()
    changed = [n for n, p in params.items() if not torch.equal(p.detach(), before[n])]
    if not changed:
        raise ContractError("one optimiser step changed no trainable parameter (no gradient reaches them?)")
    return (f"loss {float(loss.detach()):.4g}; {len(changed)} of {len(params)} trainable tensors changed "
            f"(lr {float(recipe.get('lr', 1e-3)):g})")


_RUNNERS: dict[str, tuple[Callable[[_Ctx], str], tuple[str, ...]]] = {
    "card": (_check_card, ()),
    "build": (_check_build, ()),
    "embed shapes": (_check_embed_shapes, ("build",)),
    "embed independent": (_check_embed_independent, ("embed shapes",)),
    "logits shape": (_check_logits_shape, ("embed shapes",)),
    "episode batching": (_check_episode_batching, ("logits shape",)),
    "support order": (_check_support_order, ("logits shape",)),
    "class order": (_check_class_order, ("logits shape",)),
    "deterministic": (_check_deterministic, ("logits shape",)),
    "training step": (_check_training_step, ("build",)),
}


def check_method(name: str, preset: str = "tiny", *, matcher: str | None = None,
                 overrides: dict[str, Any] | None = None, way: int = 3, shot: int = 2, query: int = 2,
                 seed: int = 0) -> list[CheckResult]:
    """Run the contract checks (`CHECKS`) on method `name` built from `preset` with random weights.

    Raises FsarError when the method cannot be looked up (unknown name, plugin that fails to
    import, unknown preset); everything that goes wrong afterwards is a failed check. The caller's
    torch RNG state is left as it was.
    """
    cls = method_class(name)
    if preset not in cls.presets:
        raise unknown("preset", preset, cls.presets, where=f"of method {name!r}")
    if way < 2 or shot < 1 or query < 1:
        raise ValueError("the checks need way >= 2, shot >= 1 and query >= 1")
    ctx = _Ctx(name, preset, matcher, seed, way, shot, query,
               {**random_init_overrides(name, preset), **(overrides or {})})
    if matcher is not None:
        matcher_class(matcher)  # unknown matcher: the caller's error too
    _check_overrides(name, cls, ctx.overrides, matcher)
    resolve_hparams(name, preset, **{k: v for k, v in ctx.overrides.items() if not k.startswith(MATCHER_PREFIX)})
    return _run_checks(ctx)


def check_matcher(name: str, *, overrides: dict[str, Any] | None = None, patches: int = 0, way: int = 3,
                  shot: int = 2, query: int = 2, seed: int = 0) -> list[CheckResult]:
    """The contract checks of matcher `name`, run under `MatcherHost` (frame features [B, T, D], or
    [B, T, P, D] with `patches` > 0); `overrides` are `matcher.<key>` hyperparameters. To check it
    under a real method, `check_method(method, matcher=name)` instead."""
    matcher_class(name)
    if way < 2 or shot < 1 or query < 1:
        raise ValueError("the checks need way >= 2, shot >= 1 and query >= 1")
    overrides = dict(overrides or {})
    bad = [k for k in overrides if not k.startswith(MATCHER_PREFIX)]
    if bad:
        raise FsarError(f"--set {bad[0]}=... is not a matcher hyperparameter (a matcher is checked under a "
                        "neutral host method)", f"write matcher hyperparameters as --set {MATCHER_PREFIX}KEY=VALUE")
    _check_overrides("", MatcherHost, overrides, name)
    ctx = _Ctx(name, "tiny", name, seed, way, shot, query, overrides, host={"patches": patches})
    return _run_checks(ctx)


def _check_overrides(method: str, cls: type, overrides: dict[str, Any], matcher: str | None) -> None:
    from fsar_bench.validate import check_matcher_overrides, check_overrides

    if method:
        check_overrides(method, cls, overrides, matcher=matcher)
    else:
        check_matcher_overrides(matcher or "", {k[len(MATCHER_PREFIX):]: v for k, v in overrides.items()})


def plugin_kind(name: str) -> str:
    """'method' or 'matcher': what `name` is registered as (a method when it is both); FsarError
    naming both registries when it is neither."""
    methods, matchers = list_methods(), list_matchers()
    if name in methods:
        return "method"
    if name in matchers:
        return "matcher"
    hint = suggest(name, [*methods, *matchers]) if len(name) <= 200 else ""
    raise FsarError(f"{name!r} is neither a registered method nor a registered matcher",
                    (hint + " " if hint else "") + f"known methods: {', '.join(methods)}; known matchers: "
                    f"{', '.join(matchers)} (a plugin must be pip-installed with its entry point)")


def _run_checks(ctx: _Ctx) -> list[CheckResult]:
    results: dict[str, CheckResult] = {}
    with torch.random.fork_rng(devices=[]):
        for check, (fn, needs) in _RUNNERS.items():
            blocked = [n for n in needs if results[n].status != "pass"]
            if blocked:
                results[check] = CheckResult(check, "skip", f"needs '{blocked[0]}' to pass")
                continue
            t0 = time.perf_counter()
            try:
                detail = fn(ctx)
                status = "skip" if detail.startswith("skip: ") else "pass"
                detail = detail[len("skip: "):] if status == "skip" else detail
            except Exception as exc:  # noqa: BLE001  (a plugin's bug is a failed check, not a crash)
                status, detail = "fail", (str(exc) if isinstance(exc, ContractError) else _first_line(exc))
            results[check] = CheckResult(check, status, detail, time.perf_counter() - t0)
    return list(results.values())
