"""fsar-bench: benchmark harness and leaderboard toolkit for few-shot action recognition.

The public API is imported lazily (PEP 562), so that light commands (`fsar-bench episodes ...`,
`fsar-bench list datasets`) start without importing torch.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "EpisodeBatch": "fsar_bench.protocol", "Features": "fsar_bench.protocol", "Matcher": "fsar_bench.protocol",
    "MatcherLike": "fsar_bench.protocol", "Method": "fsar_bench.protocol", "MethodCard": "fsar_bench.protocol",
    "MethodLike": "fsar_bench.protocol", "FsarError": "fsar_bench.errors",
    "create_matcher": "fsar_bench.registry", "create_method": "fsar_bench.registry",
    "list_matchers": "fsar_bench.registry", "list_methods": "fsar_bench.registry",
    "register_matcher": "fsar_bench.registry", "register_method": "fsar_bench.registry",
}


def list_datasets() -> list[str]:
    """Names of the dataset cards shipped with fsar-bench (real and toy)."""
    from fsar_bench.data.cards import list_cards

    return list_cards()


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'fsar_bench' has no attribute {name!r}")


__all__ = [*_EXPORTS, "list_datasets", "__version__"]
