"""The plugin protocol's hooks and its two installed pieces (the training loop, the matcher lookup).

`fsar_bench.protocol` imports no engine and no registry: the engine installs the episodic loop that
`Method.fit` runs, the registry installs the matcher lookup and `create_method` hands the matcher
class over. These tests pin what a plugin author sees of that.
"""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import pytest
from torch import nn

import fsar_bench
from fsar_bench import FsarError, Method
from fsar_bench.config import load_config
from fsar_bench.data.cards import get_card
from fsar_bench.data.source import VideoSource
from fsar_bench.engine.batches import train_episodes
from fsar_bench.engine.evaluate import clip_transform


class AsksForMasks(Method):
    """Requests instance masks, and gives them up in `prepare_training` when the data has none."""

    extra_inputs = frozenset({"masks"})

    def __init__(self, *, frames: int = 2, image_size: int = 16) -> None:
        super().__init__(frames=frames, image_size=image_size)
        self.proj = nn.Linear(3, 4)
        self.feature_dim = 4
        self.prepared_with: list[str] = []

    def embed(self, clips, texts=None):
        return self.proj(clips.mean(dim=(-1, -2)))

    def prepare_training(self, source) -> None:
        self.prepared_with.append(source.card.name)
        if source.mask_root is None:
            self.extra_inputs = frozenset()


def _source(root, masks: bool) -> VideoSource:
    src = VideoSource.open(get_card("toy-motion"), load_config(), root / "toy-motion")
    return src if masks else dataclasses.replace(src, mask_root=None)


@pytest.mark.parametrize("masks", [True, False])
def test_prepare_training_runs_before_the_training_episodes_are_built(toy_data_root, masks):
    method = AsksForMasks()
    src = _source(toy_data_root, masks)
    episodes = train_episodes(method, src, 3, 1, 1, 2, "train/hooks", clip_transform(method, src))
    assert method.prepared_with == ["toy-motion"]
    assert episodes.with_masks is masks  # decided by the hook, before the stream existed
    batch = episodes[0]
    assert ("support_masks" in batch.extras) is masks and batch.support.shape[:2] == (3, 2)


def test_create_method_passes_the_matcher_class_and_checks_its_options():
    from fsar_bench.registry import matcher_class

    method = fsar_bench.create_method("protonet", preset="tiny", matcher="otam", matcher_kwargs={"lam": 0.3})
    assert method.matcher_cls is matcher_class("otam") and method.matcher_name == "otam"
    assert method.matcher.lam == pytest.approx(0.3)
    with pytest.raises(FsarError, match="'lamb' of matcher 'otam'.*did you mean 'lam'"):
        fsar_bench.create_method("protonet", preset="tiny", matcher="otam", matcher_kwargs={"lamb": 0.3})


def test_a_method_built_by_hand_sets_a_matcher_by_name():
    method = AsksForMasks()
    method.set_matcher("otam")  # the registry (imported by the engine) resolves the name
    assert type(method.matcher).__name__ == "OTAM" and method.matcher_name == "otam"


FRESH = """
import sys
from fsar_bench.errors import FsarError
from fsar_bench.protocol import Method

class M(Method):
    def embed(self, clips, texts=None):
        return clips

for call in (lambda m: m.fit(None, None), lambda m: m.set_matcher("proto")):
    try:
        call(M())
    except FsarError as exc:
        print(exc)
assert "fsar_bench.engine.train" not in sys.modules and "fsar_bench.registry" not in sys.modules
"""


def test_protocol_alone_says_what_to_import():
    """Without the engine and the registry, `fit` and `set_matcher(name)` fail with a one-line fix."""
    out = subprocess.run([sys.executable, "-c", FRESH], capture_output=True, text=True, check=True).stdout
    assert out.splitlines() == [
        "no training loop is installed; import fsar_bench.engine.train first",
        "no matcher class is installed; import fsar_bench.registry first",
    ]
