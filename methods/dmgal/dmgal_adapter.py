"""DMGAL-Adapter (DMGAL Sec. III-C2, Fig. 3a): a frozen CLIP ViT-B/16 with Smga-Adapters (Eq. 16)
in all early blocks and the Cmga-Adapter (Eq. 17) in the last block, r1 = r2 = 4, Bi-MHM or TRX.

    frames -> frozen blocks 1..L-1, each with a Smga-Adapter (per video)
              embed -> tokens entering the last block [B, T, 1 + h*w, D]
    episode -> frozen block L with the Cmga-Adapter on the whole task -> ln_post(class token)
            -> metric X                                                      (matchers.py)

Our choices where the paper is silent (dmgal.md section 7, adapters.md): bottleneck width 0.25 D
(192 on ViT-B/16), zero-initialised W_up, class token passed through the adapters, frame feature =
class token after ln_post (768-d, no `proj`, as ST-Adapter / AIM / D2ST), only the adapters train.
Placement: each adapter sits on the residual stream at the START of its block ('pre_attn'),
i.e. between blocks as in D2ST (whose adapter follows the MLP of the previous block). This
matters for the last block: the class token passes through the adapters, so a Cmga-Adapter
after the last block's attention would never reach the class-token frame features; before the
attention, the class token attends to the C-MGA-enhanced patch tokens.

ASSUMPTION (labelled in the card, docs/methods/dmgal.md and `fsar-bench list methods`): the paper
calls its Smga-/Cmga-Adapters "simplified versions" of S-MGA and C-MGA (Fig. 3b, Sec. IV-D2)
without saying what is removed, and no code exists. `mga_form="full"` (default) keeps the whole
S-MGA (with the temporal MLP-mixer, a 192x192 channel MLP at width 192) and C-MGA inside the
adapters; `mga_form="simplified"` is the simpler reading: no temporal mixer and single-scale motion
(Eq. 2 with N = 1: the difference maps through the 1x1 conv only). Neither is confirmed.

Table VI's switches: `smga_adapter=False` puts ST-Adapters (Eq. 15) where the Smga-Adapters were
(the paper: "replacing the ST-Adapter with the Smga-Adapter"); `cmga_adapter=False` gives the
last block the same per-video adapter as the early blocks, and `embed` then returns frame features.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from fsar_bench.protocol import CLIP_MEAN, CLIP_STD, Matcher, Method
from fsar_bench.weights import open_clip_model
from fsar_methods.dmgal.adapters import CmgaAdapter, SmgaAdapter
from fsar_methods.dmgal.cmga import ATTENTION_MODES
from fsar_methods.dmgal.matchers import CmgaAdapterMatcher
from fsar_methods.dmgal.motion import mga_config
from fsar_methods.st_adapter.adapter import STAdapterModule
from fsar_methods.st_adapter.method import ADAPTER_TRAIN_PRESETS
from fsar_methods.st_adapter.method import METRIC_DEFAULTS as ADAPTER_METRICS
from fsar_methods.st_adapter.vit import FrozenViT, check_position, per_video

# Bi-MHM as in the adapter-tuning FSAR code (sum, prototype); TRX with pairs, as DMGAL-FT (dmgal_ft.py).
METRIC_DEFAULTS: dict[str, dict[str, Any]] = {**ADAPTER_METRICS, "trx": {"cardinalities": (2,)}}
# Readings of the paper's "simplified versions" of S-MGA / C-MGA as adapters (module docstring).
MGA_FORMS = ("full", "simplified")


class DMGALAdapter(Method):
    """DMGAL-Adapter with the switches of Table VI.

    Args:
        model, pretrained, weights: open_clip model, hub tag, or local state-dict file (OpenAI weights
            need the '-quickgelu' model name). frames, image_size: clip shape.
        r1, r2: compression inside the Smga- and Cmga-Adapters (4 and 4 in the paper).
        adapter_ratio: bottleneck width D' / D. adapter_position: 'pre_attn' (default, see above),
            'pre_mlp' or 'post_mlp'.
        smga_adapter, cmga_adapter: Table VI's switches. temporal_mixer: Eqs. 8-9 inside the Smga-Adapter.
        cmga_attention: 'frame_wise' or 'frame_all'. mga_variant, mga_options: as in DMGAL-FT.
        mga_form: 'full' (whole S-MGA / C-MGA in the adapters) or 'simplified' (no temporal mixer,
            single-scale motion); an assumption either way, see the module docstring.
        use_proj: frame features through CLIP's `proj`. episode_chunk: episodes per last-block call.
    """

    no_decay_on_norms = True  # no weight decay on normalisation layers, as the reference training code
    presets = {
        "full": {"model": "ViT-B-16-quickgelu", "pretrained": "openai", "frames": 8, "image_size": 224,
                 "r1": 4, "r2": 4},
        "tiny": {"model": "fsar-tiny-vit", "pretrained": None, "frames": 8, "image_size": 32, "r1": 4, "r2": 4},
    }
    train_presets = ADAPTER_TRAIN_PRESETS  # the D2ST-Adapter ViT recipe (st_adapter/method.py)
    default_matcher = "bimhm"
    mean = CLIP_MEAN
    std = CLIP_STD

    def __init__(self, *, model: str = "ViT-B-16-quickgelu", pretrained: str | None = None, weights: str | None = None,
                 frames: int = 8, image_size: int = 224, r1: int = 4, r2: int = 4, adapter_ratio: float = 0.25,
                 adapter_position: str = "pre_attn", smga_adapter: bool = True, cmga_adapter: bool = True,
                 temporal_mixer: bool = True, cmga_attention: str = "frame_wise", mga_variant: str = "release",
                 mga_options: Mapping[str, Any] | None = None, use_proj: bool = False, episode_chunk: int = 4,
                 mga_form: str = "full") -> None:
        super().__init__(frames=frames, image_size=image_size)
        if mga_form not in MGA_FORMS:
            raise ValueError(f"mga_form must be one of {MGA_FORMS}, not {mga_form!r}")
        if mga_form == "simplified":
            temporal_mixer = False
            mga_options = {"multi_scale": False, **(mga_options or {})}
        self.mga_form = mga_form
        clip, self.weights_source = open_clip_model(model, weights=weights, pretrained=pretrained)
        self.vit = FrozenViT(clip.visual)
        self.position = check_position(adapter_position)
        if cmga_attention not in ATTENTION_MODES:
            raise ValueError(f"cmga_attention must be one of {ATTENTION_MODES}, not {cmga_attention!r}")
        self.mga = mga_config(mga_variant, mga_options)
        dim, grid = self.vit.width, self.vit.grid
        self.adapter_width = width = max(1, round(dim * adapter_ratio))

        def early() -> nn.Module:
            if smga_adapter:
                return SmgaAdapter(dim, width, self.frames, grid, r1, self.mga, temporal_mixer)
            return STAdapterModule(dim, width, grid)

        self.use_cmga = bool(cmga_adapter)
        self.adapters = nn.ModuleList(early() for _ in range(self.vit.depth - int(self.use_cmga)))
        self.r2, self.cmga_attention = int(r2), cmga_attention
        self.use_proj = bool(use_proj)
        self.episode_chunk = int(episode_chunk)
        self.feature_dim = self.vit.proj_dim if self.use_proj else dim

    def build_matcher(self, name: str, **kwargs: Any) -> Matcher:
        """Last block + Cmga-Adapter + the registered metric `name` ("DMGAL-Adapter (X)")."""
        metric = super().build_matcher(name, **{**METRIC_DEFAULTS.get(name, {}), **kwargs})
        if not self.use_cmga:
            return metric
        adapter = CmgaAdapter(self.vit.width, self.adapter_width, self.vit.grid, self.r2, self.mga, self.cmga_attention)
        return CmgaAdapterMatcher(self.vit, adapter, metric, self.position, self.use_proj, self.episode_chunk)

    def embed(self, clips: Tensor, texts: Sequence[str] | None = None) -> Tensor:
        """clips [B, T, 3, H, W] -> tokens entering the last block [B, T, 1 + h*w, D] (with the
        Cmga-Adapter), or frame features [B, T, D] (without)."""
        b, t = clips.shape[:2]
        x = self.vit.tokens(clips.flatten(0, 1))
        for i, adapter in enumerate(self.adapters):
            x = self.vit.block(i, x, per_video(adapter, t), self.position)
        if self.use_cmga:
            return x.unflatten(0, (b, t))
        return self.vit.readout(x, self.use_proj).unflatten(0, (b, t))
