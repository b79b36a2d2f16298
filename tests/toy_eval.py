"""A small evaluation setup shared by the evaluation-engine tests: tiny ProtoNet (OTAM) on toy-motion."""

from __future__ import annotations


def toy_protonet_episodes(seed: str, episodes: int = 12):
    """(method, source, episode set): ProtoNet `tiny` with OTAM (weights from torch seed 0), the
    toy-motion test videos and `episodes` 5-way 1-shot episodes drawn with `seed`."""
    import torch

    import fsar_bench
    from fsar_bench.config import load_config
    from fsar_bench.data.cards import get_card
    from fsar_bench.data.source import VideoSource
    from fsar_bench.episodes.locks import make_set
    from fsar_bench.episodes.sampler import EpisodeSpec

    card = get_card("toy-motion")
    src = VideoSource.open(card, load_config())
    torch.manual_seed(0)
    method = fsar_bench.create_method("protonet", preset="tiny", matcher="otam")
    return method, src, make_set(card, EpisodeSpec(card.name, "test", 5, 1, 1, episodes, seed))
