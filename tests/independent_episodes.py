"""An independent implementation of the episode protocol, written from docs/episodes.md alone.

Standard library only and no import of fsar_bench: if this file and the harness agree on the
digests, the spec is complete and the harness follows it. It deliberately does things another
way where the spec allows (its own JSON string writer, a plain list Fisher-Yates, bytes
compared as bytes) so that shared mistakes are unlikely.

Usage: python tests/independent_episodes.py SPLIT_FILE WAY SHOT QUERY EPISODES SEED
prints the digest (and with --lines, the export).
"""

from __future__ import annotations

import hashlib
import sys

TWO_64 = 2 ** 64

# Python's str.splitlines boundaries, as listed in the spec (besides \n, \r\n and \r).
_EXTRA_BREAKS = ("\v", "\f", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029")


def parse(data: bytes) -> dict[bytes, list[bytes]]:
    """Split list bytes -> {class: [ids]} with classes and ids as UTF-8 bytes (spec section 1)."""
    text = data.decode("utf-8")
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    for br in _EXTRA_BREAKS:
        text = text.replace(br, "\n")
    groups: dict[bytes, list[bytes]] = {}
    for raw in text.split("\n"):
        if raw == "" or raw.isspace():
            continue
        cut = raw.rfind("/")
        if cut <= 0 or cut == len(raw) - 1:
            raise ValueError(f"bad split line {raw!r}")
        cls, vid = raw[:cut].encode("utf-8"), raw[cut + 1:].encode("utf-8")
        if vid in groups.setdefault(cls, []):
            raise ValueError(f"duplicate line {raw!r}")
        groups[cls].append(vid)
    return groups


class Stream:
    """The per-episode integer source (spec section 2)."""

    def __init__(self, seed: str, episode: int) -> None:
        self.seed, self.episode, self.c = seed, episode, 0

    def next64(self) -> int:
        msg = (self.seed + "/" + str(self.episode) + "/" + str(self.c)).encode("utf-8")
        self.c += 1
        return int(hashlib.sha256(msg).hexdigest()[:16], 16)

    def below(self, n: int) -> int:
        limit = TWO_64 - (TWO_64 % n)
        x = self.next64()
        while x >= limit:
            x = self.next64()
        return x % n

    def choose(self, items: list, k: int) -> list:
        """First k steps of Fisher-Yates on a copy (spec section 3)."""
        a = items[:]
        for i in range(k):
            j = i + self.below(len(a) - i)
            a[i], a[j] = a[j], a[i]
        return a[:k]


_SHORT = {0x08: "\\b", 0x09: "\\t", 0x0A: "\\n", 0x0C: "\\f", 0x0D: "\\r", 0x22: '\\"', 0x5C: "\\\\"}


def jstr(b: bytes) -> str:
    """A JSON string literal per spec section 5 (escape ", \\ and U+0000..U+001F only)."""
    out = ['"']
    for ch in b.decode("utf-8"):
        o = ord(ch)
        if o in _SHORT:
            out.append(_SHORT[o])
        elif o < 0x20:
            out.append("\\u%04x" % o)
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def jlist(items) -> str:
    return "[" + ",".join(items) + "]"


def episode_line(groups: dict[bytes, list[bytes]], way: int, shot: int, query: int, seed: str, e: int,
                 eligible: list[bytes]) -> str:
    s = Stream(seed, e)
    chosen = s.choose(eligible, way)
    sup, qry = [], []
    for cls in chosen:
        picked = s.choose(sorted(groups[cls]), shot + query)
        sup.append(picked[:shot])
        qry.append(picked[shot:])
    return ("{" + '"classes":' + jlist(jstr(c) for c in chosen)
            + ',"index":' + str(e)
            + ',"query":' + jlist(jlist(jstr(v) for v in q) for q in qry)
            + ',"support":' + jlist(jlist(jstr(v) for v in p) for p in sup)
            + "}\n")


def export(data: bytes, way: int, shot: int, query: int, episodes: int, seed: str) -> bytes:
    """The .jsonl export of a spec (its SHA-256 is the digest)."""
    groups = parse(data)
    eligible = sorted(c for c, v in groups.items() if len(v) >= shot + query)  # bytes sort = UTF-8 order
    if len(eligible) < way:
        raise ValueError(f"only {len(eligible)} eligible classes for {way}-way")
    return "".join(episode_line(groups, way, shot, query, seed, e, eligible) for e in range(episodes)).encode("utf-8")


def digest(data: bytes, way: int, shot: int, query: int, episodes: int, seed: str) -> str:
    return hashlib.sha256(export(data, way, shot, query, episodes, seed)).hexdigest()


def first_u64(seed: str, episode: int = 0) -> int:
    return Stream(seed, episode).next64()


def test_indices(n: int, t: int) -> list[int]:
    """Test-time frames: segment centres (spec section 9)."""
    return [(2 * i + 1) * n // (2 * t) for i in range(t)]


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if a != "--lines"]
    path, way, shot, query, n, seed = args
    blob = export(open(path, "rb").read(), int(way), int(shot), int(query), int(n), seed)
    if "--lines" in sys.argv:
        sys.stdout.write(blob.decode("utf-8"))
    else:
        print(hashlib.sha256(blob).hexdigest())
