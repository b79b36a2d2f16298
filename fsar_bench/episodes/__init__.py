"""Episodes: canonical sampling (sampler.py), locked sets (locks.py) and the protocol constants.

The constants below are the one definition of the canonical test protocol; everything else
imports them (docs/episodes.md).
"""

from __future__ import annotations

import re

CANONICAL_EPISODES = 10_000  # test episodes of a canonical run (the papers' 10,000)
CANONICAL_QUERY = 1  # queries per class in a canonical test episode
VAL_EPISODES = 1_000  # validation episodes used for model selection
_SETTING = re.compile(r"^(\d+)w(\d+)s$")


def setting_name(way: int, shot: int) -> str:
    """The setting string of an N-way K-shot episode set, e.g. '5w1s'."""
    return f"{int(way)}w{int(shot)}s"


def parse_setting(text: str) -> tuple[int, int] | None:
    """(way, shot) of a setting string like '5w1s'; None when it is not one."""
    m = _SETTING.match(text.strip())
    return (int(m.group(1)), int(m.group(2))) if m else None


def set_key(split: str, way: int, shot: int, query: int, episodes: int) -> str:
    """The name of an episode set in a lock file, e.g. 'test-5w1s-1q-10000'."""
    return f"{split}-{setting_name(way, shot)}-{query}q-{episodes}"


def canonical_test_key(way: int, shot: int) -> str:
    """The lock key of the canonical test set of a setting."""
    return set_key("test", way, shot, CANONICAL_QUERY, CANONICAL_EPISODES)
