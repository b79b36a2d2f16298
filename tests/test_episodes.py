"""The frozen episode protocol (docs/episodes.md): determinism across processes, agreement with an
independent implementation written from the spec alone, episode invariants, errors, the lock
files and the `fsar-bench episodes` commands."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
import independent_episodes as ind  # noqa: E402  (the spec-only implementation beside this file)
from fsar_bench.data import cards as cards_mod
from fsar_bench.data.cards import get_card, list_cards, load_card
from fsar_bench.data.sampling import test_indices as centre_indices
from fsar_bench.episodes import locks, sampler
from fsar_bench.episodes.locks import make_set, read_lock, standard_specs, write_lock
from fsar_bench.episodes.sampler import EpisodeSampler, EpisodeSet, EpisodeSpec, _Draws
from fsar_bench.errors import FsarError

DOC_EXAMPLE = ("walk/w2\nwalk/w1\nwalk/w3\nJump/j1\nJump/j2\nJump/j3\nswing/s1\nswing/s2\nswing/s3\nswing/s4\n"
               "Étirement/e1\nÉtirement/e2\nÉtirement/e3\nsit/x1\n")
TOY_5W1S_DIGEST = "2e48503b00853fc1327e4c522956c5fd3075faba286b25925670e8877fe24387"  # docs/episodes.md


def by_class(text: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for cls, vid in cards_mod.parse_split(text, "<test>"):
        out.setdefault(cls, []).append(vid)
    return out


def spec_of(dataset, split, way, shot, query, episodes, seed=None) -> EpisodeSpec:
    card = get_card(dataset)
    return EpisodeSpec(card.name, split, way, shot, query, episodes, seed or card.seeds[split])


def split_bytes(dataset: str, split: str) -> bytes:
    card = get_card(dataset)
    return (card.folder / card.split_files[split]).read_bytes()


# --- determinism -------------------------------------------------------------------------------

def test_digest_identical_across_processes_and_hashseeds():
    spec = spec_of("toy-motion", "test", 5, 1, 1, 300)
    here = make_set(get_card("toy-motion"), spec).digest
    package = Path(sampler.__file__).resolve().parent.parent
    code = (  # a bare `fsar_bench` package object skips fsar_bench/__init__.py (torch): a fast subprocess
        f"import sys, types; pkg = types.ModuleType('fsar_bench'); pkg.__path__ = [{str(package)!r}]; "
        "sys.modules['fsar_bench'] = pkg; "
        "from fsar_bench.data.cards import get_card; from fsar_bench.episodes.locks import make_set; "
        "from fsar_bench.episodes.sampler import EpisodeSpec; c = get_card('toy-motion'); "
        "print(make_set(c, EpisodeSpec(c.name, 'test', 5, 1, 1, 300, c.seeds['test'])).digest)")
    for hashseed in ("0", "123"):
        env = {**os.environ, "PYTHONHASHSEED": hashseed}
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
        assert out.stdout.strip() == here


def test_doc_worked_examples():
    # the integer source
    assert ind.first_u64("fsar-bench/toy-motion/test/v1") == 7199863865255734259
    assert _Draws("fsar-bench/toy-motion/test/v1", 0).u64() == 7199863865255734259
    # the hand example of section 6
    es = EpisodeSet(EpisodeSpec("example", "test", 3, 1, 1, 2, "example-seed"), by_class(DOC_EXAMPLE))
    assert [ep.canonical() for ep in es] == [
        '{"classes":["swing","walk","Étirement"],"index":0,"query":[["s1"],["w2"],["e1"]],'
        '"support":[["s3"],["w3"],["e2"]]}',
        '{"classes":["swing","walk","Jump"],"index":1,"query":[["s3"],["w1"],["j1"]],'
        '"support":[["s4"],["w3"],["j2"]]}',
    ]
    assert es.digest == "152879fc407627ccc3961701be303b3beb94937cf144a4e74e5f4c3ba5979da2"
    assert ind.digest(DOC_EXAMPLE.encode(), 3, 1, 1, 2, "example-seed") == es.digest
    # the standard set quoted in the doc
    assert read_lock(get_card("toy-motion"))["test-5w1s-1q-10000"]["digest"] == TOY_5W1S_DIGEST


def test_independent_implementation_full_toy_set():
    """The spec-only implementation reproduces a complete locked standard set."""
    assert ind.digest(split_bytes("toy-motion", "test"), 5, 1, 1, 10_000, "fsar-bench/toy-motion/test/v1") \
        == TOY_5W1S_DIGEST


INDEPENDENT_CASES = [
    ("toy-appearance", "test", 5, 5, 1, 500),
    ("toy-motion", "val", 5, 3, 2, 300),
    ("kinetics100", "test", 5, 1, 1, 500),     # class names with spaces
    ("kinetics100", "val", 7, 2, 3, 200),
    ("ssv2_small", "test", 5, 5, 1, 300),      # spaces and apostrophes ("doesn't")
    ("ssv2_full", "test", 10, 1, 1, 300),      # unequal class sizes (17 .. 200+)
    ("ssv2_full", "test", 5, 10, 10, 100),     # 20 videos per class: some classes ineligible
    ("hmdb51", "test", 10, 1, 1, 300),         # way = all test classes
    ("ucf101", "test", 5, 0, 1, 300),          # zero-shot
]


@pytest.mark.parametrize("case", INDEPENDENT_CASES, ids=lambda c: "-".join(map(str, c)))
def test_independent_implementation_agrees(case):
    dataset, split, way, shot, query, n = case
    spec = spec_of(dataset, split, way, shot, query, n)
    es = make_set(get_card(dataset), spec)
    blob = ind.export(split_bytes(dataset, split), way, shot, query, n, spec.seed)
    assert blob == "".join(es.lines()).encode()
    assert hashlib.sha256(blob).hexdigest() == es.digest


def test_independent_implementation_agrees_on_awkward_names():
    """Non-ASCII, quotes, backslashes, control characters, '/' inside a class, odd line ends."""
    text = ('caf\u00e9 au lait/v1\ncaf\u00e9 au lait/v2\ncaf\u00e9 au lait/v3\n'
            'say "hi"\\there/a\\b\r\nsay "hi"\\there/x"y\r\nsay "hi"\\there/z\n'
            'a/b/c/1\na/b/c/2\na/b/c/3\n  \n'
            'tab\tclass/\x01ctl\ntab\tclass/new\x7fline\ntab\tclass/\u2603 snow\n'
            'Zulu/1\nZulu/2\nZulu/3\nzulu/1\nzulu/2\n\u65e5\u672c/\U0001f600\n\u65e5\u672c/k\n\u65e5\u672c/l\n')
    bc = by_class(text)
    assert "a/b/c" in bc and bc["say \"hi\"\\there"] == ["a\\b", "x\"y", "z"]
    for way, shot, query in [(3, 1, 1), (5, 2, 1), (6, 0, 2), (7, 1, 1)]:
        es = EpisodeSet(EpisodeSpec("awkward", "test", way, shot, query, 200, "s\u00e9ed/with/slashes"), bc)
        lines = list(es.lines())
        assert all(line == ep.canonical() + "\n" for line, ep in zip(lines, es))
        blob = ind.export(text.encode(), way, shot, query, 200, "s\u00e9ed/with/slashes")
        assert blob == "".join(lines).encode()
        assert hashlib.sha256(blob).hexdigest() == es.digest


def test_test_frame_indices_match_spec():
    for n in (1, 7, 16, 100, 301):
        for t in (1, 4, 8, 16):
            assert centre_indices(n, t) == ind.test_indices(n, t)
    assert centre_indices(16, 8) == [1, 3, 5, 7, 9, 11, 13, 15]


# --- the sampler's internals --------------------------------------------------------------------

@pytest.mark.parametrize("way,shot,query", [(5, 1, 1), (5, 5, 1), (10, 1, 1), (3, 0, 4)])
def test_batched_episode_equals_one_by_one_draws(way, shot, query):
    card = get_card("toy-appearance")
    s = EpisodeSampler(card.split("test").by_class, spec_of("toy-appearance", "test", way, shot, query, 300))
    for i in range(300):
        assert s.episode(i) == s.episode_reference(i)


class _FakeHash:
    """SHA-256, except that draws whose counter ends in 0 or 3 return the maximum u64 (2^64 - 1),
    which `below(n)` must reject for every n that is not a power of two."""

    real = staticmethod(hashlib.sha256)

    def __init__(self, data: bytes = b"") -> None:
        self.value = b"\xff" * 32 if data.endswith((b"0", b"3")) else self.real(data).digest()

    def digest(self) -> bytes:
        return self.value

    def hexdigest(self) -> str:
        return self.value.hex()


def test_reference_path_agrees_with_the_spec_under_heavy_rejection(monkeypatch):
    """Many rejections (every draw whose counter ends in 0 or 3): the one-by-one path and the
    spec-only implementation (which calls hashlib.sha256, patched for this test too) agree.
    (Draw 0 is always rejected here, so `episode` always falls back to `episode_reference`: the
    batched path's own rejection checks are tested below with planted draws.)"""
    monkeypatch.setattr(sampler, "_sha256", _FakeHash)
    d = _Draws("s", 0)
    assert d.below(4) == (2 ** 64 - 1) % 4 and d.counter == 1  # 2^64 mod 4 = 0: nothing is rejected
    monkeypatch.setattr(hashlib, "sha256", _FakeHash)
    extra = "".join(f"extra{c}/{v}\n" for c in range(6) for v in range(5))
    es = EpisodeSet(EpisodeSpec("fake", "test", 5, 2, 1, 60, "seed"), by_class(DOC_EXAMPLE + extra))
    assert ind.export((DOC_EXAMPLE + extra).encode(), 5, 2, 1, 60, "seed") == "".join(es.lines()).encode()
    assert es.episodes == [es.sampler.episode_reference(i) for i in range(60)]


TWO64 = 2 ** 64
PLANT_SEED = "plant"
PLANT_CLASSES = {f"c{c}": [f"v{v}" for v in range(7)] for c in range(8)}  # 8 classes of 7 videos


def _real_u64(counter: int, index: int = 0) -> int:
    return int.from_bytes(hashlib.sha256(f"{PLANT_SEED}/{index}/{counter}".encode()).digest()[:8], "big")


class _PlantedHash:
    """SHA-256, except for the messages in `planted`, whose first 8 bytes are the planted u64."""

    planted: dict[bytes, int] = {}
    real = staticmethod(hashlib.sha256)

    def __init__(self, data: bytes = b"") -> None:
        x = self.planted.get(data)
        self.value = self.real(data).digest() if x is None else x.to_bytes(8, "big") + bytes(24)

    def digest(self) -> bytes:
        return self.value


def _spec_episode(xs: list[int], way: int = 3, shot: int = 1, query: int = 1):
    """docs/episodes.md on a given list of u64 draws: reject x >= 2^64 - (2^64 mod n) and take the
    next draw; Fisher-Yates steps j = i + below(n - i); classes first, then each class's videos."""
    from fsar_bench.episodes.sampler import Episode

    it = iter(xs)

    def below(n: int) -> int:
        for x in it:
            if x < TWO64 - TWO64 % n:
                return x % n
        raise AssertionError("ran out of draws")

    def sample(items: list[str], k: int) -> list[str]:
        a = list(items)
        for i in range(k):
            j = i + below(len(a) - i)
            a[i], a[j] = a[j], a[i]
        return a[:k]

    classes = sample(sorted(PLANT_CLASSES), way)
    picks = [sample(PLANT_CLASSES[c], shot + query) for c in classes]
    return Episode(0, tuple(classes), tuple(tuple(p[:shot]) for p in picks), tuple(tuple(p[shot:]) for p in picks))


# Draws of a 3-way 1-shot 1-query episode of 8 classes x 7 videos: 0, 1, 2 pick classes (ranges 8, 7, 6);
# then per class two videos (ranges 7, 6): draws 3-4, 5-6, 7-8. Rejection limits 2^64 - (2^64 mod n):
# n = 7: 2^64 = 2 (mod 7), limit 2^64 - 2; n = 6: 2^64 = 4 (mod 6), limit 2^64 - 4.
@pytest.mark.parametrize("draw,n", [(1, 7), (2, 6), (5, 7), (8, 6)], ids=["class-pick-7", "class-pick-6",
                                                                         "video-pick-7", "last-batched-draw"])
@pytest.mark.parametrize("rejected", [True, False], ids=["at-limit", "limit-minus-1"])
def test_planted_draw_at_the_rejection_limit(monkeypatch, draw, n, rejected):
    """One draw planted at exactly the limit (must be rejected: every later draw shifts by one) or just
    below it (must be used: x mod n). The batched path and the one-by-one path give the spec's episode."""
    limit = TWO64 - TWO64 % n
    value = limit if rejected else limit - 1
    real = [_real_u64(c) for c in range(12)]
    planted = real[:draw] + [value] + real[draw + 1:]
    expected = _spec_episode(planted)
    no_rejection = _spec_episode(real)
    if rejected:  # in the expected way: the planted draw is skipped, the rest move up one counter
        assert expected == _spec_episode(real[:draw] + real[draw + 1:])
    assert expected != no_rejection  # the planted draw matters for this episode
    if draw >= 3:  # a video draw: the classes and the earlier classes' videos are untouched
        assert expected.classes == no_rejection.classes
        first = (draw - 3) // 2
        assert expected.support[:first] == no_rejection.support[:first]
        assert expected.query[:first] == no_rejection.query[:first]

    monkeypatch.setattr(_PlantedHash, "planted", {f"{PLANT_SEED}/0/{draw}".encode(): value})
    monkeypatch.setattr(sampler, "_sha256", _PlantedHash)
    s = EpisodeSampler(PLANT_CLASSES, EpisodeSpec("plant", "test", 3, 1, 1, 1, PLANT_SEED))
    assert s.episode(0) == expected  # batched path (falls back to one-by-one draws on a rejection)
    assert s.episode_reference(0) == expected


@pytest.mark.parametrize("n", [3, 6, 7])
def test_rejected_draws_advance_the_counter(monkeypatch, n):
    """A draw >= 2^64 - (2^64 mod n) is thrown away and the next counter value is used; one just below
    the limit is used as is."""
    limit = TWO64 - TWO64 % n
    monkeypatch.setattr(sampler, "_sha256", _PlantedHash)
    monkeypatch.setattr(_PlantedHash, "planted", {f"{PLANT_SEED}/0/0".encode(): limit})
    d = _Draws(PLANT_SEED, 0)
    assert d.below(n) == _real_u64(1) % n and d.counter == 2
    monkeypatch.setattr(_PlantedHash, "planted", {f"{PLANT_SEED}/0/0".encode(): limit - 1})
    d = _Draws(PLANT_SEED, 0)
    assert d.below(n) == (limit - 1) % n == n - 1 and d.counter == 1
    monkeypatch.setattr(_PlantedHash, "planted", {f"{PLANT_SEED}/0/{c}".encode(): TWO64 - 1 for c in range(3)})
    d = _Draws(PLANT_SEED, 0)  # three rejections in a row (2^64 - 1 >= limit: n is not a power of two)
    assert d.below(n) == _real_u64(3) % n and d.counter == 4


# --- episode invariants -------------------------------------------------------------------------

@pytest.mark.parametrize("dataset,way,shot", [("toy-motion", 5, 1), ("ucf101", 5, 5), ("hmdb51", 10, 1),
                                              ("kinetics100", 5, 0)])
def test_episode_invariants(dataset, way, shot):
    card = get_card(dataset)
    spec = spec_of(dataset, "test", way, shot, 2, 500)
    es = make_set(card, spec)
    test = card.split("test").by_class
    for ep in es:
        assert len(ep.classes) == way == len(set(ep.classes))
        for cls, sup, qry in zip(ep.classes, ep.support, ep.query):
            assert cls in test
            assert len(sup) == shot and len(qry) == 2
            assert not set(sup) & set(qry) and len(set(sup) | set(qry)) == shot + 2
            assert set(sup) | set(qry) <= set(test[cls])
        # labels = draw order: the first `way` draws of the episode's stream give the classes in order
        assert tuple(_Draws(spec.seed, ep.index).sample(es.sampler.classes, way)) == ep.classes
        assert [lab for *_, lab in ep.query_keys()] == [lab for lab in range(way) for _ in range(2)]
        assert [c for c, _, lab in ep.support_keys()] == [ep.classes[lab] for *_, lab in ep.support_keys()]
    if shot == 0:
        assert all(s == () for ep in es for s in ep.support)
        assert es.episodes[0].canonical().endswith('"support":[[],[],[],[],[]]}')


def test_classes_come_from_the_named_split_only():
    card = get_card("ucf101")
    val = set(card.split("val").by_class)
    es = make_set(card, spec_of("ucf101", "val", 5, 1, 1, 200))
    assert {c for ep in es for c in ep.classes} <= val


# --- errors -------------------------------------------------------------------------------------

def test_too_many_ways_is_a_one_line_error():
    with pytest.raises(FsarError) as info:
        make_set(get_card("toy-motion"), spec_of("toy-motion", "test", 25, 1, 1, 10))
    msg = str(info.value)
    assert "\n" not in msg and "24" in msg and "--way 24 or fewer" in msg


def test_too_many_shots_is_a_one_line_error():
    with pytest.raises(FsarError) as info:
        make_set(get_card("toy-motion"), spec_of("toy-motion", "test", 5, 12, 1, 10))
    msg = str(info.value)
    assert "\n" not in msg and "13" in msg and "lower --shot" in msg


def test_invalid_shape_and_duplicates_are_errors():
    with pytest.raises(FsarError):
        EpisodeSampler({"a": ["1", "2"]}, EpisodeSpec("d", "test", 1, 1, 0, 1, "s"))
    with pytest.raises(FsarError) as info:
        EpisodeSampler({"a": ["1", "2", "1"], "b": ["1", "2"]}, EpisodeSpec("d", "test", 2, 1, 1, 1, "s"))
    assert "a/1 is listed twice" in str(info.value) and "\n" not in str(info.value)


# --- shipped data and locks (fast: no recomputation) ---------------------------------------------

@pytest.mark.parametrize("dataset", list_cards())
def test_split_lists_are_plain(dataset):
    """docs/episodes.md states the shipped lists use only '\\n' line ends and no duplicate lines."""
    card = get_card(dataset)
    for split in card.split_files:
        text = split_bytes(dataset, split).decode("utf-8")
        assert "\r" not in text and not any(b in text for b in ind._EXTRA_BREAKS)
        assert not text.startswith("\ufeff")
        entries = card.split(split).entries
        assert len(set(entries)) == len(entries)


@pytest.mark.parametrize("dataset", list_cards())
def test_lock_covers_exactly_the_standard_sets(dataset):
    card = get_card(dataset)
    lock = read_lock(card)
    specs = standard_specs(card)
    assert sorted(lock) == sorted(s.key for s in specs), "run `fsar-bench episodes lock` (maintainers)"
    for s in specs:
        entry = lock[s.key]
        assert (entry["split"], entry["way"], entry["shot"], entry["query"], entry["episodes"], entry["seed"]) == \
            (s.split, s.way, s.shot, s.query, s.episodes, s.seed)
        assert entry["split_sha256"] == card.split(s.split).sha256
        assert len(entry["digest"]) == 64
    keys = {s.key for s in specs}
    assert {"test-5w1s-1q-10000", "test-5w3s-1q-10000", "test-5w5s-1q-10000", "test-6w1s-1q-10000",
            "test-10w1s-1q-10000", "val-5w1s-1q-1000"} <= keys


def test_canonicity():
    card = get_card("toy-motion")
    assert locks.canonicity(card, make_set(card, spec_of("toy-motion", "test", 5, 1, 1, 10_000))).canonical
    other = locks.canonicity(card, make_set(card, spec_of("toy-motion", "test", 5, 1, 5, 100)))
    assert not other.canonical and "not a standard" in other.reason
    reseeded = locks.canonicity(card, make_set(card, spec_of("toy-motion", "test", 5, 1, 1, 10_000, seed="x")))
    assert not reseeded.canonical and "seed" in reseeded.reason


# --- the CLI ------------------------------------------------------------------------------------

def test_verify_toy_dataset(cli):
    res = cli("episodes", "verify", "--dataset", "toy-motion")
    assert res.code == 0, res.err
    rows = [line for line in res.out.splitlines() if line.startswith("toy-motion ")]
    assert len(rows) == 12 and all(line.rstrip().endswith(" ok") for line in rows)
    assert "all 12 standard episode sets of 1 dataset match their locks" in res.out


@pytest.mark.slow
def test_verify_all_datasets(background_cli):
    """Every standard set of every card equals its lock (84 sets; ~25 s of one core): `fsar-bench
    episodes verify --jobs 1` run in the background from the start of the session (conftest.py);
    the worker-pool path is test_verify_toy_dataset's."""
    res = background_cli
    assert res.code == 0, res.out + res.err
    assert "match their locks" in res.out


@pytest.fixture()
def small_card(tmp_path, monkeypatch):
    """A copy of toy-motion in tmp_path with 40-episode standard sets, locked, as the only card."""
    folder = tmp_path / "toy_motion"
    shutil.copytree(get_card("toy-motion").folder, folder)
    (folder / "episodes.lock.yaml").unlink()
    monkeypatch.setattr(locks, "TEST_EPISODES", 40)
    monkeypatch.setattr(locks, "VAL_EPISODES", 20)

    def cards():
        card = load_card(folder / "card.yaml")
        return {card.name: card}

    monkeypatch.setattr(cards_mod, "_all_cards", cards)
    return folder


def test_verify_detects_tampering(small_card, cli):
    res = cli("episodes", "verify", "-d", "toy-motion", "--jobs", "1")
    assert res.code == 1 and "MISSING LOCK" in res.out
    err = [line for line in res.err.splitlines() if line.strip()]
    assert len(err) == 1 and "fsar-bench episodes lock -d toy-motion" in err[0]

    assert cli("episodes", "lock", "-d", "toy-motion").code == 0
    assert cli("episodes", "verify", "-d", "toy-motion", "--jobs", "2").code == 0

    path = small_card / "episodes.lock.yaml"
    data = yaml.safe_load(path.read_text())
    data["sets"]["test-5w3s-1q-40"]["digest"] = "0" * 64
    path.write_text(yaml.safe_dump(data))
    res = cli("episodes", "verify", "-d", "toy-motion", "--jobs", "1")
    assert res.code == 1
    bad = [line for line in res.out.splitlines() if "MISMATCH" in line]
    assert len(bad) == 1 and "test-5w3s-1q-40" in bad[0]
    err = [line for line in res.err.splitlines() if line.strip()]
    assert len(err) == 1 and "test-5w3s-1q-40" in err[0] and "episodes lock" in err[0]

    # a changed split list: every test set mismatches, and the table says why
    write_lock(load_card(small_card / "card.yaml"))
    test_list = small_card / "test.txt"
    test_list.write_text("\n".join(test_list.read_text().splitlines()[1:]) + "\n")
    cards_mod.DatasetCard.split.cache_clear()  # split lists are cached per (equal) card
    res = cli("episodes", "verify", "-d", "toy-motion", "--jobs", "1")
    assert res.code == 1 and res.out.count("MISMATCH (split list changed)") == 9


def test_show(cli):
    res = cli("episodes", "show", "--dataset", "ucf101", "--index", "2", "--count", "2")
    assert res.code == 0, res.err
    lock = read_lock(get_card("ucf101"))["test-5w1s-1q-10000"]["digest"]
    assert lock in res.out and "canonical  yes" in res.out
    assert "episode 2" in res.out and "episode 3" in res.out and "episode 4" not in res.out
    assert "label 4:" in res.out and '"' in res.out  # action names from the class map
    res = cli("episodes", "show", "--dataset", "ucf101", "--query", "3", "--count", "0")
    assert res.code == 0 and "canonical  no" in res.out
    res = cli("episodes", "show", "--dataset", "ucf101", "--way", "22")
    assert res.code == 2 and "--way 21 or fewer" in res.err


def test_export_jsonl_acceptance(tmp_path, cli):
    out = tmp_path / "ucf.jsonl"
    res = cli("episodes", "export", "--dataset", "ucf101", "--way", "5", "--shot", "1", "--output", out)
    assert res.code == 0, res.err
    data = out.read_bytes()
    lines = data.decode("utf-8").splitlines()
    assert len(lines) == 10_000 and data.endswith(b"\n")
    assert hashlib.sha256(data).hexdigest() == read_lock(get_card("ucf101"))["test-5w1s-1q-10000"]["digest"]
    test_classes = set(get_card("ucf101").split("test").classes)
    assert len(test_classes) == 21
    for i, line in enumerate(lines):
        ep = json.loads(line)
        assert ep["index"] == i and len(set(ep["classes"])) == 5 and set(ep["classes"]) <= test_classes
    assert not list(tmp_path.glob(".*tmp"))  # no temp file left behind


def test_export_parquet(tmp_path, cli):
    import pandas as pd
    import pyarrow.parquet as pq

    out = tmp_path / "sub" / "toy.parquet"
    res = cli("episodes", "export", "-d", "toy-motion", "--shot", "0", "--episodes", "50", "-o", out)
    assert res.code == 0, res.err
    frame = pd.read_parquet(out)
    es = make_set(get_card("toy-motion"), spec_of("toy-motion", "test", 5, 0, 1, 50))
    assert len(frame) == 50 and list(frame["index"]) == list(range(50))
    assert {"classes", "support", "query", "way", "shot", "queries_per_class", "seed", "digest"} <= set(frame)
    assert (frame["digest"] == es.digest).all() and not frame["canonical"].any()
    row = frame.iloc[7]
    assert tuple(row["classes"]) == es.episodes[7].classes
    assert [tuple(q) for q in row["query"]] == list(es.episodes[7].query)
    assert [len(s) for s in row["support"]] == [0] * 5
    meta = json.loads(pq.read_schema(out).metadata[b"fsar_episodes"])
    assert meta["digest"] == es.digest and meta["spec"]["shot"] == 0


def test_export_rejects_unknown_format(tmp_path, cli):
    res = cli("episodes", "export", "-d", "toy-motion", "-o", tmp_path / "x.csv")
    assert res.code == 2 and ".jsonl or FILE.parquet" in res.err and not (tmp_path / "x.csv").exists()
