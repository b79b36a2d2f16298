"""fsar-bench: benchmark harness and leaderboard toolkit for few-shot action recognition."""

from fsar_bench.errors import FsarError
from fsar_bench.protocol import EpisodeBatch, Features, Matcher, MatcherLike, Method, MethodCard, MethodLike
from fsar_bench.registry import (
    create_matcher,
    create_method,
    list_matchers,
    list_methods,
    register_matcher,
    register_method,
)

__version__ = "0.1.0"


def list_datasets() -> list[str]:
    """Names of the dataset cards shipped with fsar-bench (real and toy)."""
    from fsar_bench.data.cards import list_cards

    return list_cards()


__all__ = [
    "EpisodeBatch", "Features", "FsarError", "Matcher", "MatcherLike", "Method", "MethodCard",
    "MethodLike", "create_matcher", "create_method", "list_datasets", "list_matchers", "list_methods",
    "register_matcher", "register_method", "__version__",
]
