"""Class text features F_T from the frozen CLIP text encoder, with MA-FSAR's prompt templates.

MA-FSAR Sec. 4.1.2 and 4.3.8 (Tables 9 and 10): 16 prompt templates; in training one template is
drawn at random for each video, at inference the text feature is the average of the outputs of all
16 templates ("summing and averaging the outputs of 16 textual tokens"). The text encoder is
frozen (Sec. 3.3.2), so the 16 features of each class name are computed once and cached; a random
draw in training picks one of them (torch RNG, so the shared training loop's per-step seeding
makes it reproducible).

Features are the raw outputs of `encode_text` (after CLIP's text projection, not L2-normalised),
as CLIP-FSAR uses them (notes/clip_fsar.md Sec. 2); cosine similarities normalise where needed.
The baselines reuse this module with one template ("a photo of {}" for CLIP-FSAR).
`class_text` and `video_text_logits` are the video-text similarity of MA-FSAR Eqs. 14-15, which
zero-shot CLIP scores with too.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fsar_bench.errors import unknown
from fsar_bench.protocol import group_by_class
from fsar_bench.weights import clip_tokenizer

# MA-FSAR Table 10 ("[CLS]" is the action name).
PROMPT_TEMPLATES: tuple[str, ...] = (
    "{}",
    "a photo of action {}",
    "a picture of action {}",
    "Human action of {}",
    "{}, an action",
    "{} this is an action",
    "{}, a video of action",
    "Playing action of {}",
    "Playing a kind of action, {}",
    "Doing a kind of action, {}",
    "Look, the human is {}",
    "Can you recognize the action of {}",
    "Video classification of {}",
    "A video of {}",
    "The man is {}",
    "The woman is {}",
)

# The prompt choices of MA-FSAR Table 9, plus CLIP-FSAR's default prompt (notes/clip_fsar.md Sec. 2).
PROMPT_SETS: dict[str, tuple[str, ...]] = {
    "mixture": PROMPT_TEMPLATES,
    "cls": ("{}",),
    "photo_action": ("a photo of action {}",),
    "photo": ("a photo of {}",),
}


def prompt_templates(prompt: str) -> tuple[str, ...]:
    if prompt not in PROMPT_SETS:
        raise unknown("prompt set", prompt, PROMPT_SETS)
    return PROMPT_SETS[prompt]


class ClassTextEncoder(nn.Module):
    """Frozen CLIP text tower: action names -> F_T [N, D'].

    Training mode: one random template per name (per video). Eval mode: mean over all templates.
    `clip_text` is an open_clip CLIP model without its visual tower (see backbone.load_clip); its
    parameters are frozen here. `logit_scale` is CLIP's (frozen) temperature.
    """

    def __init__(self, clip_text: nn.Module, clip_model: str, templates: Sequence[str] = PROMPT_TEMPLATES,
                 batch_size: int = 256) -> None:
        super().__init__()
        self.clip = clip_text
        for p in self.clip.parameters():
            p.requires_grad_(False)
        self.templates = tuple(templates)
        self.tokenizer = clip_tokenizer(clip_model)
        self.batch_size = int(batch_size)
        self._cache: dict[str, Tensor] = {}  # name -> [K templates, D'] (never saved: recomputable)

    @property
    def dim(self) -> int:
        proj = self.clip.text_projection
        return int(proj.out_features if isinstance(proj, nn.Linear) else proj.shape[1])

    @property
    def logit_scale(self) -> Tensor:
        return self.clip.logit_scale.exp()

    @torch.no_grad()
    def _fill(self, names: Sequence[str]) -> None:
        new = [n for n in dict.fromkeys(names) if n not in self._cache]
        if not new:
            return
        prompts = [tpl.format(n) for n in new for tpl in self.templates]
        device = self.clip.token_embedding.weight.device
        was_training = self.clip.training
        self.clip.eval()
        feats = []
        for start in range(0, len(prompts), self.batch_size):
            tokens = self.tokenizer(prompts[start:start + self.batch_size]).to(device)
            feats.append(self.clip.encode_text(tokens).float())
        self.clip.train(was_training)
        table = torch.cat(feats).view(len(new), len(self.templates), -1)
        for name, row in zip(new, table):
            self._cache[name] = row

    def all_templates(self, names: Sequence[str]) -> Tensor:
        """[N, K, D'] features of every template for each name."""
        self._fill(names)
        device = self.clip.token_embedding.weight.device
        return torch.stack([self._cache[n] for n in names]).to(device)

    def forward(self, names: Sequence[str]) -> Tensor:
        table = self.all_templates(names)
        if not self.training:
            return table.mean(dim=1)
        pick = torch.randint(len(self.templates), (len(names),))
        return table[torch.arange(len(names)), pick.to(table.device)]

    def _load_from_state_dict(self, *args, **kwargs) -> None:  # new text weights: forget cached features
        self._cache.clear()
        super()._load_from_state_dict(*args, **kwargs)

    def _apply(self, fn, recurse: bool = True):  # .to(device) / .double(): recompute in the new setting
        self._cache.clear()
        return super()._apply(fn, recurse)


def class_text(support_text: Tensor, support_labels: Tensor, way: int) -> Tensor:
    """The text feature of each episode class from its supports: [E, S, D'] -> [E, way, D'] (mean over
    shots; at inference all shots of a class carry the same template-averaged feature)."""
    return group_by_class(support_text, support_labels, way).mean(dim=2)


def video_text_logits(video: Tensor, text: Tensor, scale: Tensor | float) -> Tensor:
    """Eqs. 14-15 times the temperature: video [E, N, D'], text [E, C, D'] -> [E, N, C]."""
    return scale * torch.einsum("end,ecd->enc", F.normalize(video, dim=-1), F.normalize(text, dim=-1))
