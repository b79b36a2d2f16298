"""Canonical episode sampling (the algorithm of docs/episodes.md, implemented exactly).

Every draw comes from SHA-256 of (seed, episode index, draw counter), never from a library RNG,
so an episode depends only on the split list's content and the spec: not on the process, the
Python or torch version, PYTHONHASHSEED, the number of workers or the other episodes.
"""

from __future__ import annotations

import hashlib
import json
import struct
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import cached_property

from fsar_bench.episodes import set_key, setting_name
from fsar_bench.errors import FsarError

FORMAT = "fsar-episodes/1"
_TWO64 = 1 << 64
_sha256 = hashlib.sha256


@dataclass(frozen=True)
class EpisodeSpec:
    """What identifies a set of episodes (with the split list's content)."""

    dataset: str
    split: str
    way: int
    shot: int
    query: int
    episodes: int
    seed: str

    @property
    def setting(self) -> str:
        return setting_name(self.way, self.shot)

    @property
    def key(self) -> str:
        """The name of this set in a lock file, e.g. 'test-5w1s-1q-10000'."""
        return set_key(self.split, self.way, self.shot, self.query, self.episodes)


@dataclass(frozen=True)
class Episode:
    """One N-way K-shot task: classes in label order; per class its support and query video ids."""

    index: int
    classes: tuple[str, ...]
    support: tuple[tuple[str, ...], ...]  # [way][shot]
    query: tuple[tuple[str, ...], ...]  # [way][query]

    def support_keys(self) -> list[tuple[str, str, int]]:
        """(class, id, label) of the supports, class-major: the order methods receive them in."""
        return [(c, v, lab) for lab, (c, vids) in enumerate(zip(self.classes, self.support)) for v in vids]

    def query_keys(self) -> list[tuple[str, str, int]]:
        return [(c, v, lab) for lab, (c, vids) in enumerate(zip(self.classes, self.query)) for v in vids]

    def canonical(self) -> str:
        """The episode's line in the canonical serialisation (sorted keys, no spaces, UTF-8)."""
        return json.dumps({"index": self.index, "classes": list(self.classes),
                           "support": [list(s) for s in self.support], "query": [list(q) for q in self.query]},
                          sort_keys=True, separators=(",", ":"), ensure_ascii=False)


_TABLE = 4096
_COUNTERS = [str(i).encode() for i in range(_TABLE)]  # decimal draw counters, pre-encoded
_LIMITS = [0] + [_TWO64 - _TWO64 % m for m in range(1, _TABLE)]  # rejection limits per range size


def _limit(n: int) -> int:
    return _LIMITS[n] if n < _TABLE else _TWO64 - _TWO64 % n


class _Draws:
    """The deterministic integer source of one episode (docs/episodes.md, section 2), drawn one by one.

    Draw number c (c = 0, 1, 2, ... across the whole episode, rejected draws included) is the
    first 8 bytes, big-endian, of SHA-256 of the UTF-8 bytes of f"{seed}/{episode}/{c}".
    """

    __slots__ = ("prefix", "counter")

    def __init__(self, seed: str, episode: int) -> None:
        self.prefix = f"{seed}/{episode}/".encode()
        self.counter = 0

    def u64(self) -> int:
        c = self.counter
        self.counter = c + 1
        tail = _COUNTERS[c] if c < _TABLE else str(c).encode()
        return int.from_bytes(_sha256(self.prefix + tail).digest()[:8], "big")

    def below(self, n: int) -> int:
        """Uniform integer in [0, n) by rejection (no modulo bias): reject x >= 2^64 - (2^64 mod n)."""
        limit = _limit(n)
        while True:
            x = self.u64()
            if x < limit:
                return x % n

    def sample(self, items: Sequence[str], k: int) -> list[str]:
        """k items without replacement: the first k steps of a Fisher-Yates shuffle.

        Step i (0-based) draws j = i + below(n - i) and swaps positions i and j of a working copy
        of `items`; the sample is the first k positions afterwards, in step order.
        """
        work = list(items)
        n = len(work)
        if not 0 <= k <= n:
            raise ValueError(f"cannot draw {k} of {n} items without replacement")
        for i in range(k):
            j = i + self.below(n - i)
            work[i], work[j] = work[j], work[i]
        return work[:k]


def _take(items: Sequence[str], k: int, xs: Sequence[int], pos: int) -> list[str] | None:
    """`_Draws.sample` on pre-drawn integers xs[pos:pos+k]; None if one of them must be rejected.

    Sparse Fisher-Yates: `moved` holds only the positions whose content changed, so a step costs
    O(1) however long `items` is. Position i is final after step i and is never read again.
    """
    n = len(items)
    moved: dict[int, int] = {}
    out = []
    for i in range(k):
        m = n - i
        x = xs[pos + i]
        if x >= (_LIMITS[m] if m < _TABLE else _TWO64 - _TWO64 % m):
            return None
        j = i + x % m
        vj = moved.get(j, j)
        moved[j] = moved.get(i, i)
        out.append(items[vj])
    return out


class EpisodeSampler:
    """Draws episodes of `spec` from a split given as {class: [video ids]}."""

    def __init__(self, by_class: dict[str, list[str]], spec: EpisodeSpec) -> None:
        need = spec.shot + spec.query
        if spec.way < 1 or spec.shot < 0 or spec.query < 1 or need < 1:
            raise FsarError(f"invalid episode shape way={spec.way} shot={spec.shot} query={spec.query}",
                            "use way >= 1, shot >= 0 and query >= 1")
        self.spec = spec
        self._unpack: dict[int, Callable[[bytes], tuple[int, ...]]] = {}
        enc = lambda s: s.encode()  # noqa: E731  (order by UTF-8 bytes, locale-independent)
        self.videos = {c: sorted(v, key=enc) for c, v in by_class.items()}
        for cls, vids in self.videos.items():
            dup = next((a for a, b in zip(vids, vids[1:]) if a == b), None)
            if dup is not None:  # would let one video be both a support and a query
                raise FsarError(f"video {cls}/{dup} is listed twice in the {spec.split} split of {spec.dataset}",
                                "remove the duplicate line from the split list")
        self.classes = sorted((c for c, v in self.videos.items() if len(v) >= need), key=enc)
        if len(self.classes) < spec.way:
            most = max((len(v) for v in self.videos.values()), default=0)
            if len(self.videos) < spec.way:
                raise FsarError(f"{spec.way}-way episodes need {spec.way} classes but the {spec.split} split of "
                                f"{spec.dataset} has {len(self.videos)}", f"use --way {len(self.videos)} or fewer")
            raise FsarError(f"shot + query = {need} videos per class, but only {len(self.classes)} classes of the "
                            f"{spec.split} split of {spec.dataset} have that many (the largest has {most})",
                            "lower --shot or --query")

    def episode(self, index: int) -> Episode:
        """Episode `index`: computes the episode's way * (1 + shot + query) draws in one batch and
        falls back to drawing one by one (`episode_reference`) in the (p < 2^-50) case that one of
        them is rejected. Both give exactly the episode of docs/episodes.md."""
        spec = self.spec
        way, shot, need = spec.way, spec.shot, spec.shot + spec.query
        n = way * (1 + need)
        if n > _TABLE:
            return self.episode_reference(index)
        prefix = f"{spec.seed}/{index}/".encode()
        unpack = self._unpack.get(n)
        if unpack is None:
            unpack = self._unpack[n] = struct.Struct(f">{n}Q").unpack
        xs = unpack(b"".join([_sha256(prefix + tail).digest()[:8] for tail in _COUNTERS[:n]]))
        classes = _take(self.classes, way, xs, 0)
        if classes is None:
            return self.episode_reference(index)
        support, query = [], []
        pos = way
        for cls in classes:
            picked = _take(self.videos[cls], need, xs, pos)
            if picked is None:
                return self.episode_reference(index)
            pos += need
            support.append(tuple(picked[:shot]))
            query.append(tuple(picked[shot:]))
        return Episode(index, tuple(classes), tuple(support), tuple(query))

    def episode_reference(self, index: int) -> Episode:
        """Episode `index` drawn one integer at a time (the spec, literally)."""
        draws = _Draws(self.spec.seed, index)
        classes = draws.sample(self.classes, self.spec.way)
        support, query = [], []
        for cls in classes:
            picked = draws.sample(self.videos[cls], self.spec.shot + self.spec.query)
            support.append(tuple(picked[: self.spec.shot]))
            query.append(tuple(picked[self.spec.shot:]))
        return Episode(index, tuple(classes), tuple(support), tuple(query))


class EpisodeSet:
    """A fixed list of episodes with the SHA-256 digest of their canonical serialisation."""

    def __init__(self, spec: EpisodeSpec, by_class: dict[str, list[str]]) -> None:
        self.spec = spec
        self.sampler = EpisodeSampler(by_class, spec)

    @cached_property
    def episodes(self) -> list[Episode]:
        return [self.sampler.episode(i) for i in range(self.spec.episodes)]

    def __iter__(self) -> Iterator[Episode]:
        return iter(self.episodes)

    def __len__(self) -> int:
        return self.spec.episodes

    def lines(self) -> Iterator[str]:
        for ep in self.episodes:
            yield ep.canonical() + "\n"

    @cached_property
    def digest(self) -> str:
        """SHA-256 (hex) of the episodes' canonical lines, each ending in a newline (= the JSONL export)."""
        h = hashlib.sha256()
        for line in self.lines():
            h.update(line.encode())
        return h.hexdigest()
