"""The plugin protocol: what a method and a matcher are.

A method turns one video into features that do not depend on the episode (`Method.embed`), so
the evaluator can embed each distinct video once and reuse it across thousands of episodes.
A matcher sees a whole episode (`Matcher.score`) and returns logits; task-level modules that mix
support and query (DMGAL's C-MGA, MA-FSAR's prototype modulation) therefore live in matchers.

Third parties subclass `Method` and `Matcher` (which give working defaults for training and
batching) and register them under the entry-point groups `fsar_bench.methods` and
`fsar_bench.matchers`. `MethodLike` and `MatcherLike` state the minimal contract as
`typing.Protocol`s for code that only consumes methods.

This module is a leaf: it imports no engine and no registry (only for type checking). The
registry resolves a matcher's class and hands it to `Method.set_matcher`; the engine registers
the shared episodic loop that `Method.fit` runs (`register_training_loop`), and calls the
`prepare_training` hook before it builds the training episodes.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, Union, runtime_checkable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fsar_bench.errors import FsarError, unknown

if TYPE_CHECKING:
    from fsar_bench.data.source import VideoSource
    from fsar_bench.engine.train import TrainConfig, TrainData, TrainState

# Per-video features: a tensor with the batch first ([B, T, D], [B, T, P, D], ...), or a mapping
# of such tensors when a method needs several streams (I2ST: image and instance features).
Features = Union[Tensor, Mapping[str, Tensor]]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
NORM_LAYERS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.LayerNorm, nn.GroupNorm)


def map_features(feats: Features, fn) -> Features:
    """Apply `fn` to every tensor of a feature structure."""
    if isinstance(feats, Tensor):
        return fn(feats)
    return {k: fn(v) for k, v in feats.items()}


def feature_batch_size(feats: Features) -> int:
    if isinstance(feats, Tensor):
        return feats.shape[0]
    return next(iter(feats.values())).shape[0]


@dataclass
class EpisodeBatch:
    """One episode as tensors, the unit of episodic training.

    Supports come class-major (all shots of label 0, then label 1, ...); labels are 0..way-1 in
    the episode's class order. `class_names` are action names (for text branches), in label order.
    `global_labels[i]` is the index of episode class i in `split_class_names` (the classes of the
    split the episode was drawn from), for losses over all training classes.
    `extras` holds optional per-video inputs (e.g. instance masks, key 'support_masks').
    """

    support: Tensor  # [S, T, 3, H, W]
    support_labels: Tensor  # [S]
    query: Tensor  # [Q, T, 3, H, W]
    query_labels: Tensor  # [Q]
    way: int
    shot: int
    class_names: list[str]
    global_labels: Tensor  # [way]
    split_class_names: list[str]
    extras: dict[str, Tensor] = field(default_factory=dict)

    @property
    def support_texts(self) -> list[str]:
        """The class name of each support video (what text-conditioned methods embed with it)."""
        return [self.class_names[int(i)] for i in self.support_labels]

    def to(self, device: torch.device | str) -> EpisodeBatch:
        moved = {k: v.to(device) for k, v in self.extras.items()}
        return EpisodeBatch(
            self.support.to(device), self.support_labels.to(device), self.query.to(device),
            self.query_labels.to(device), self.way, self.shot, self.class_names,
            self.global_labels.to(device), self.split_class_names, moved,
        )


@runtime_checkable
class MatcherLike(Protocol):
    def score(self, query: Features, support: Features, support_labels: Tensor, way: int,
              **kwargs: Any) -> Tensor: ...


@runtime_checkable
class MethodLike(Protocol):
    matcher: MatcherLike

    def embed(self, clips: Tensor, texts: Sequence[str] | None = None) -> Features: ...

    def fit(self, data: Any, config: Any) -> Any: ...


class Matcher(nn.Module):
    """Scores the queries of episodes against their supports.

    Implement `score_batch` over a leading episode dimension E (no Python loop over pairs or
    episodes); `score` is the single-episode convenience. Supports may come in any order:
    use `group_by_class` to get them as [E, way, shot, ...].
    """

    name: ClassVar[str] = ""

    def score_batch(self, query: Features, support: Features, support_labels: Tensor, way: int,
                    **kwargs: Any) -> Tensor:
        """query [E, Q, ...], support [E, S, ...], support_labels [E, S] -> logits [E, Q, way]."""
        raise NotImplementedError

    def score(self, query: Features, support: Features, support_labels: Tensor, way: int,
              **kwargs: Any) -> Tensor:
        """query [Q, ...], support [S, ...], support_labels [S] -> logits [Q, way]."""
        add = lambda t: t.unsqueeze(0)  # noqa: E731
        out = self.score_batch(map_features(query, add), map_features(support, add),
                               support_labels.unsqueeze(0), way, **kwargs)
        return out.squeeze(0)

    def forward(self, *args: Any, **kwargs: Any) -> Tensor:
        return self.score(*args, **kwargs)


def group_by_class(support: Tensor, support_labels: Tensor, way: int) -> Tensor:
    """[E, S, ...] with labels [E, S] -> [E, way, shot, ...], shots in their given order.

    Requires the same number of shots per class (the benchmark's episodes always have it).
    """
    e, s = support_labels.shape
    if s % way:
        raise ValueError(f"{s} supports do not split evenly into {way} classes")
    order = torch.argsort(support_labels, dim=1, stable=True)
    rows = torch.arange(e, device=support.device).unsqueeze(1)
    return support[rows, order].view(e, way, s // way, *support.shape[2:])


def check_init_kwargs(kind: str, name: str, cls: type, kwargs: Mapping[str, Any]) -> None:
    """Reject a keyword `cls.__init__` does not take, with a did-you-mean (classes taking **kwargs pass)."""
    params = inspect.signature(cls.__init__).parameters
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return
    allowed = [p for p in params if p != "self"]
    for key in kwargs:
        if key not in allowed:
            raise unknown(f"hyperparameter of {kind} {name!r},", key, allowed)


TrainingLoop = Callable[["Method", "TrainData", "TrainConfig"], "TrainState"]
_installed: dict[str, Callable[..., Any]] = {}  # 'training_loop' (the engine), 'matcher_class' (the registry)


def register_training_loop(loop: TrainingLoop) -> None:
    """Install the loop `Method.fit` runs by default (fsar_bench.engine.train does, on import)."""
    _installed["training_loop"] = loop


def register_matcher_resolver(resolve: Callable[[str], type[Matcher]]) -> None:
    """Install the name -> matcher class lookup of `Method.set_matcher(name)` (fsar_bench.registry does)."""
    _installed["matcher_class"] = resolve


def _installed_hook(key: str, module: str) -> Callable[..., Any]:
    if key not in _installed:
        raise FsarError(f"no {key.replace('_', ' ')} is installed", f"import {module} first")
    return _installed[key]


@dataclass
class MethodCard:
    """What a leaderboard says about a method (rendered from `card.yaml` next to the method)."""

    name: str
    paper: str = ""
    backbone: str = ""
    pretraining: str = ""
    finetune: str = ""  # full | peft | none
    text_at_test: bool = False
    default_matcher: str = ""
    reported_as: list[str] = field(default_factory=list)  # method names in the reported CSVs
    notes: str = ""
    # Short warnings shown by `fsar-bench list methods` (e.g. "assumption: ..." where no code exists).
    labels: list[str] = field(default_factory=list)
    # preset -> the weights source of the paper ('hub:timm/resnet50.tv_in1k', 'hub:open_clip/RN50-quickgelu/openai');
    # fsar_bench.weights.weights_status compares a run's weights_source with it.
    weights: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_mapping(cls, name: str, data: Mapping[str, Any]) -> MethodCard:
        known = {f for f in cls.__dataclass_fields__ if f != "name"}
        extra = set(data) - known
        if extra:
            raise ValueError(f"card of {name!r} has unknown keys {sorted(extra)}; known: {sorted(known)}")
        return cls(name=name, **dict(data))


class Method(nn.Module):
    """A few-shot action recognition method: a per-video embedding plus a matcher.

    Subclasses define `__init__(self, *, <hyperparameters>)` (keyword-only, with defaults), the
    class attribute `presets` ({'tiny': {...}, 'full': {...}}: keyword overrides of those
    defaults), `embed`, and usually nothing else: `training_loss` defaults to cross-entropy over
    the matcher's logits, and `fit` to the shared episodic loop. Set `self.feature_dim` and
    `self.weights_source` ('random-init', 'file:<sha256 prefix>', 'hub:<tag>') in `__init__`.
    """

    name: ClassVar[str] = ""  # set by the registry from the entry-point name
    presets: ClassVar[dict[str, dict[str, Any]]] = {"tiny": {}, "full": {}}
    # Training recipe per preset (keys of fsar_bench.engine.train.TrainConfig: steps, lr, ...).
    train_presets: ClassVar[dict[str, dict[str, Any]]] = {"tiny": {}, "full": {}}
    default_matcher: ClassVar[str] = "proto"
    # True when supports are embedded with their class text: the cache then keeps a support
    # and a query role per video.
    uses_text: ClassVar[bool] = False
    # Inputs the data pipeline must provide beyond RGB clips (e.g. {'masks'} for I2ST).
    extra_inputs: ClassVar[frozenset[str]] = frozenset()
    # True: `configure_optimizer` applies no weight decay to normalisation layers (NORM_LAYERS).
    no_decay_on_norms: ClassVar[bool] = False
    # True: the method scores episodes without supports (shot 0) from the class names alone; the
    # CLI refuses --shot 0 for the others (they would score every query alike: chance accuracy).
    zero_shot: ClassVar[bool] = False
    mean: ClassVar[tuple[float, float, float]] = IMAGENET_MEAN
    std: ClassVar[tuple[float, float, float]] = IMAGENET_STD

    def __init__(self, *, frames: int = 8, image_size: int = 224) -> None:
        super().__init__()
        self.frames = int(frames)
        self.image_size = int(image_size)
        self.feature_dim: int = 0
        self.weights_source: str = "random-init"
        self.matcher: Matcher = nn.Identity()  # type: ignore[assignment]  # replaced by set_matcher
        self.matcher_cls: type[Matcher] = Matcher
        self.matcher_name = ""
        self.hparams: dict[str, Any] = {}
        self.preset: str = ""

    # -- matcher -----------------------------------------------------------------------------
    def build_matcher(self, name: str, **kwargs: Any) -> Matcher:
        """Build `self.matcher_cls`, registered as `name`; override to compose (e.g. C-MGA + metric).

        A matcher taking `dim` gets the method's `feature_dim` unless `dim` is given."""
        cls = self.matcher_cls
        if "dim" in inspect.signature(cls.__init__).parameters and "dim" not in kwargs:
            kwargs["dim"] = self.feature_dim
        check_init_kwargs("matcher", name, cls, kwargs)
        return cls(**kwargs)

    def set_matcher(self, name: str, matcher_cls: type[Matcher] | None = None, **kwargs: Any) -> None:
        """Attach the matcher registered as `name`; `create_method` passes its class, resolved by the
        registry (without it, the class is looked up in the registry, which must be imported)."""
        self.matcher_cls = matcher_cls or _installed_hook("matcher_class", "fsar_bench.registry")(name)
        self.matcher = self.build_matcher(name, **kwargs)
        self.matcher_name = name

    # -- the protocol --------------------------------------------------------------------------
    def set_dataset(self, card: Any) -> None:
        """Called with the dataset card before training (train dataset) and before evaluation (test
        dataset); methods whose behaviour depends on it (modality, class names) read it here."""
        self.dataset_card = card

    def embed(self, clips: Tensor, texts: Sequence[str] | None = None) -> Features:
        """clips [B, T, 3, H, W] (normalised) -> per-video features; must not depend on the episode."""
        raise NotImplementedError

    def score_batch(self, query: Features, support: Features, support_labels: Tensor, way: int, *,
                    class_names: Sequence[Sequence[str]] | None = None) -> Tensor:
        """Logits [E, Q, way] of a batch of episodes; override only to fuse extra scores (e.g. text).

        `class_names[e]` are the action names of episode e's classes in label order (the evaluator
        always passes them; zero-shot methods, whose episodes have no supports, rely on them).
        """
        return self.matcher.score_batch(query, support, support_labels, way)

    def score(self, query: Features, support: Features, support_labels: Tensor, way: int, *,
              class_names: Sequence[str] | None = None) -> Tensor:
        """Logits [Q, way] of one episode."""
        add = lambda t: t.unsqueeze(0)  # noqa: E731
        return self.score_batch(map_features(query, add), map_features(support, add), support_labels.unsqueeze(0),
                                way, class_names=[list(class_names)] if class_names is not None else None).squeeze(0)

    def training_loss(self, batch: EpisodeBatch) -> dict[str, Tensor]:
        """Loss of one episode: {'loss': total, other scalar parts..., 'logits': [Q, way]}."""
        support = self.embed(batch.support, batch.support_texts if self.uses_text else None)
        query = self.embed(batch.query)
        logits = self.score(query, support, batch.support_labels, batch.way, class_names=batch.class_names)
        loss = F.cross_entropy(logits, batch.query_labels)
        return {"loss": loss, "ce": loss.detach(), "logits": logits.detach()}

    def prepare_training(self, source: VideoSource) -> None:
        """Hook called with the training data source before the training episodes are built.

        A method whose inputs depend on the data decides them here, e.g. I2ST drops `masks` from
        its `extra_inputs` (and its mask loss) when the dataset has no instance masks."""

    def fit(self, data: TrainData, config: TrainConfig) -> TrainState:
        """Episodic training: the engine's shared loop, calling `training_loss` per episode."""
        return _installed_hook("training_loop", "fsar_bench.engine.train")(self, data, config)

    def configure_optimizer(self, lr: float, weight_decay: float = 0.0) -> torch.optim.Optimizer:
        """Adam with coupled L2 weight decay; with `no_decay_on_norms`, none on normalisation layers'
        parameters (the HyRSM / MoLo / D2ST training code behind DMGAL-Adapter and I2ST)."""
        if not self.no_decay_on_norms:
            params = [p for p in self.parameters() if p.requires_grad]
            return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
        decay, no_decay = [], []
        for module in self.modules():
            for p in module.parameters(recurse=False):
                if p.requires_grad:
                    (no_decay if isinstance(module, NORM_LAYERS) else decay).append(p)
        return torch.optim.Adam([{"params": decay, "weight_decay": weight_decay},
                                 {"params": no_decay, "weight_decay": 0.0}], lr=lr)

    # -- descriptions --------------------------------------------------------------------------
    @classmethod
    def card(cls) -> MethodCard:
        """The method card: `<name>.card.yaml` or `card.yaml` beside the method's module (if any)."""
        import yaml

        here = Path(inspect.getfile(cls))
        path = here.with_name(f"{cls.name}.card.yaml")
        if not path.exists():
            path = here.with_name("card.yaml")
        data = yaml.safe_load(path.read_text()) if path.exists() else {}
        data = dict(data or {})
        data.setdefault("default_matcher", cls.default_matcher)  # no card (or no key): what the class declares
        return MethodCard.from_mapping(cls.name or cls.__name__, data)

    def parameter_counts(self) -> dict[str, int]:
        total = sum(p.numel() for p in self.parameters())
        trainable = sum(p.numel() for p in self.parameters() if p.requires_grad)
        return {"params_total": total, "params_trainable": trainable}
