"""Class-overlap (leakage) audit: which test classes a model has already seen as training classes.

Few-shot test classes must be novel. Within one dataset the split lists guarantee it
(`DatasetCard.check_disjoint`), but a cross-dataset run (train on Kinetics-100, test on UCF101)
or pretraining on a public label set (Kinetics-400) can show the model a test class under another
name ("PlayingGuitar" vs "playing guitar"). Names are compared after normalisation (`normalise`),
then after reducing -ing forms (`stem_key`), then through the synonym table
`datasets/leakage/synonyms.yaml` (docs/statistics.md §5). The result is a `LeakageReport` the run
record stores and the leaderboard flags ("7 of 21 test classes seen in training").
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from fsar_bench.errors import FsarError

TABLE = "synonyms.yaml"
_ANON = re.compile(r"^(train|val|test)\d+$")  # SSv2-Full pseudo-labels: not a name
_ARTICLES = {"a", "an", "the"}
_VOWELS = set("aeiouy")


# -- names -------------------------------------------------------------------------------------

def words(name: str) -> list[str]:
    """Lower-case words of a class name: camelCase split ("ApplyEyeMakeup" -> apply eye makeup),
    separators _ - / . , brackets and quotes to spaces, articles dropped, one plural 's' stripped
    from words of 3+ letters that do not end in ss/us/is ("PushUps" -> push up)."""
    s = re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", " ", name)
    s = re.sub(r"[^a-z0-9]+", " ", s.lower().replace("'s", ""))
    out = []
    for w in s.split():
        if w in _ARTICLES:
            continue
        if len(w) >= 3 and w.endswith("s") and not w.endswith(("ss", "us", "is")):
            w = w[:-1]
        out.append(w)
    return out


def normalise(name: str) -> str:
    """The spaced normal form shown in reports ("PlayingGuitar" -> "playing guitar")."""
    return " ".join(words(name))


def name_key(name: str) -> str:
    """Normal form without spaces, so "SkyDiving" = "skydiving" and "PushUps" = "push up"."""
    return "".join(words(name))


def _stem(w: str) -> str:
    """-ing form and base verb to one stem: riding/ride -> rid, running/run -> run, skiing -> ski."""
    if len(w) >= 6 and w.endswith("ing") and _VOWELS & set(w[:-3]):
        w = w[:-3]
    elif len(w) >= 4 and w.endswith("e"):
        w = w[:-1]
    if len(w) >= 3 and w[-1] == w[-2] and w[-1] not in _VOWELS:
        w = w[:-1]
    return w


def stem_key(name: str) -> str:
    """`name_key` after reducing every word with `_stem` ("smoke" = "smoking", "ride bike" = "riding bike")."""
    return "".join(_stem(w) for w in words(name))


# -- the synonym table -------------------------------------------------------------------------

@dataclass(frozen=True)
class PretrainingSource:
    name: str
    aliases: tuple[str, ...]
    auditable: bool
    labels: tuple[str, ...]  # class names of the public label set (empty: none to match)
    note: str


@dataclass(frozen=True)
class Tables:
    concepts: dict[str, frozenset[str]]  # stem key -> concepts it belongs to
    pretraining: tuple[PretrainingSource, ...]


def _bad(path: Path, what: str) -> FsarError:
    return FsarError(f"{path}: {what}", "fix the leakage table (format described at the top of the file)")


def load_tables(path: Path) -> Tables:
    """Parse and check a synonyms.yaml (see the file's header for the format)."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise _bad(path, f"unreadable ({type(exc).__name__})") from None
    if not isinstance(data, dict) or not isinstance(data.get("synonyms"), dict):
        raise _bad(path, "needs a mapping 'synonyms: {concept: [names]}'")
    concepts: dict[str, set[str]] = {}
    for concept, names in data["synonyms"].items():
        if not isinstance(names, list) or len(names) < 2 or not all(isinstance(n, str) for n in names):
            raise _bad(path, f"synonym concept {concept!r} needs a list of at least 2 class names")
        for n in names:
            concepts.setdefault(stem_key(n), set()).add(str(concept))
    sources = []
    for name, spec in (data.get("pretraining") or {}).items():
        if not isinstance(spec, dict) or not spec.get("aliases"):
            raise _bad(path, f"pretraining source {name!r} needs 'aliases'")
        labels: tuple[str, ...] = ()
        auditable = bool(spec.get("auditable", True))
        if auditable:
            if "labels" not in spec:
                raise _bad(path, f"pretraining source {name!r} needs 'labels' (a file, or []) or 'auditable: false'")
            if isinstance(spec["labels"], str):
                try:
                    text = (path.parent / spec["labels"]).read_text(encoding="utf-8")
                except OSError:
                    raise _bad(path, f"label list {spec['labels']!r} of {name!r} is missing") from None
                labels = tuple(line.strip() for line in text.splitlines() if line.strip())
            else:
                labels = tuple(str(x) for x in spec["labels"])
        aliases = tuple(re.sub(r"[^a-z0-9]", "", str(a).lower()) for a in spec["aliases"])
        sources.append(PretrainingSource(str(name), aliases, auditable, labels, str(spec.get("note", ""))))
    return Tables({k: frozenset(v) for k, v in concepts.items()}, tuple(sources))


@lru_cache(maxsize=1)
def tables() -> Tables:
    """The shipped table (package data of fsar_datasets)."""
    from fsar_bench.data.cards import datasets_dir

    return load_tables(datasets_dir() / "leakage" / TABLE)


# -- overlap -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Match:
    test_class: str
    train_class: str  # class id (folder class / pseudo-label) or label-set name
    rule: str  # 'name' | 'stem' | 'synonym: <concept>'
    train_name: str = ""  # the action name when the id is not one (SSv2-Full "train5")
    test_name: str = ""

    def as_dict(self) -> dict[str, str]:
        return {"test_class": self.test_class, "test_name": self.test_name or self.test_class,
                "train_class": self.train_class, "train_name": self.train_name or self.train_class, "rule": self.rule}


def _variants(names: str | Iterable[str]) -> list[str]:
    return [names] if isinstance(names, str) else [n for n in names if n]


def overlap(train_classes: Mapping[str, str | Iterable[str]] | Iterable[str],
            test_classes: Mapping[str, str | Iterable[str]] | Iterable[str],
            table: Tables | None = None) -> list[tuple[str, str, str]]:
    """(test_class, train_class, rule) for every test class that names a training class.

    Classes are plain names, or a mapping class -> its name variants (e.g. folder name and text
    name; anonymised classes carry their text name). Rules, strongest first: 'name' (equal
    `name_key`), 'stem' (equal `stem_key`), 'synonym: <concept>' (a concept of the table holds
    both). Each test class is listed with every training class it matches, by its strongest rule.
    """
    table = table or tables()
    train = train_classes if isinstance(train_classes, Mapping) else {c: c for c in train_classes}
    test = test_classes if isinstance(test_classes, Mapping) else {c: c for c in test_classes}

    def keys(names: str | Iterable[str]) -> tuple[set[str], set[str], set[str]]:
        v = _variants(names)
        stems = {stem_key(n) for n in v}
        concepts = set().union(*(table.concepts.get(k, frozenset()) for k in stems)) if stems else set()
        return {name_key(n) for n in v}, stems, concepts

    train_keys = {cls: keys(names) for cls, names in train.items()}
    out = []
    for t_cls, t_names in test.items():
        t_name, t_stem, t_con = keys(t_names)
        for c_cls, (c_name, c_stem, c_con) in train_keys.items():
            if t_name & c_name:
                rule = "name"
            elif t_stem & c_stem:
                rule = "stem"
            elif t_con & c_con:
                rule = "synonym: " + sorted(t_con & c_con)[0]
            else:
                continue
            out.append((t_cls, c_cls, rule))
    return out


# -- datasets ----------------------------------------------------------------------------------

def class_names(card: Any, split: str) -> tuple[dict[str, list[str]], list[str]]:
    """({class: [name variants]}, [classes without a known name]) of a card's split.

    Variants: the folder class and the class map's text name; an anonymised pseudo-label
    ("val3") without a text name has no known name and cannot be audited.
    """
    names: dict[str, list[str]] = {}
    unknown: list[str] = []
    for cls in card.split(split).classes:
        text = card.text_names.get(cls, "")
        variants = [v for v in (cls, text) if v and not _ANON.match(v)]
        if variants:
            names[cls] = variants
        else:
            unknown.append(cls)
    return names, unknown


def resolve_pretraining(pretraining: str, table: Tables | None = None) -> list[PretrainingSource | str]:
    """The sources of a declared pretraining ("CLIP", "ImageNet + Kinetics-400"); unknown parts
    are returned as their text."""
    table = table or tables()
    aliases = sorted(((a, s) for s in table.pretraining for a in s.aliases), key=lambda x: -len(x[0]))
    out: list[PretrainingSource | str] = []
    for part in re.split(r"\s*(?:\+|,|;|\band\b)\s*", pretraining):
        key = re.sub(r"[^a-z0-9]", "", part.lower())
        if not key:
            continue
        out.append(next((s for a, s in aliases if key.startswith(a)), part.strip()))
    return out


@dataclass(frozen=True)
class LeakageReport:
    """What the run record stores and the leaderboard flags."""

    train_dataset: str
    test_dataset: str
    test_classes: int
    cross_dataset: bool
    seen_in_training: tuple[Match, ...] = ()
    test_videos: int = 0
    shared_videos: int = 0  # test videos (by id) that are training videos of a matched class
    pretraining: str | None = None
    pretraining_auditable: bool | None = None  # None: no pretraining declared
    seen_in_pretraining: tuple[Match, ...] = ()
    notes: tuple[str, ...] = field(default_factory=tuple)

    @staticmethod
    def _count(matches: tuple[Match, ...]) -> int:
        return len({m.test_class for m in matches})

    def training_flag(self) -> str | None:
        if not self.cross_dataset:
            return None
        out = f"{self._count(self.seen_in_training)} of {self.test_classes} test classes seen in training"
        if self.shared_videos:
            out += f" ({self.shared_videos:,} of {self.test_videos:,} test videos are training videos)"
        return out

    def pretraining_flag(self) -> str | None:
        if self.pretraining is None:
            return None
        if not self.pretraining_auditable:
            return f"pretraining {self.pretraining}: not auditable"
        n = self._count(self.seen_in_pretraining)
        return f"{n} of {self.test_classes} test classes in pretraining labels ({self.pretraining})" if n else None

    def flag(self) -> str | None:
        """One line for a leaderboard row (None: nothing to flag)."""
        parts = [p for p in (self.training_flag(), self.pretraining_flag()) if p]
        return "; ".join(parts) or None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form for the run record."""
        return {"train_dataset": self.train_dataset, "test_dataset": self.test_dataset,
                "test_classes": self.test_classes, "cross_dataset": self.cross_dataset,
                "seen_in_training": [m.as_dict() for m in self.seen_in_training],
                "test_videos": self.test_videos, "shared_videos": self.shared_videos,
                "pretraining": self.pretraining, "pretraining_auditable": self.pretraining_auditable,
                "seen_in_pretraining": [m.as_dict() for m in self.seen_in_pretraining],
                "notes": list(self.notes), "flag": self.flag()}


def audit(train_dataset: str, test_dataset: str, pretraining: str | None = None,
          table: Tables | None = None) -> LeakageReport:
    """Audit a run: test split of `test_dataset` against the train split of `train_dataset`
    (cross-dataset runs only; one dataset's splits are disjoint by construction) and against the
    label sets of the declared `pretraining` (a method card's `pretraining`; None or '' = none)."""
    from fsar_bench.data.cards import get_card

    table = table or tables()
    test_card = get_card(test_dataset)
    test, unknown_test = class_names(test_card, "test")
    n_test = len(test) + len(unknown_test)
    notes = [f"{len(unknown_test)} test classes have no known name and were not audited"] if unknown_test else []
    cross = train_dataset != test_dataset
    seen: list[Match] = []
    test_split = test_card.split("test")
    shared = 0
    if cross:
        train_card = get_card(train_dataset)
        train, unknown_train = class_names(train_card, "train")
        seen = [Match(t, c, r, train[c][-1], test[t][-1]) for t, c, r in overlap(train, test, table)]
        # Same video ids under matched classes (e.g. SSv2-Full train vs SSv2-Small test: one SSv2 pool).
        train_videos = {m.train_class: set(train_card.split("train").by_class[m.train_class]) for m in seen}
        shared = len({(m.test_class, v) for m in seen for v in test_split.by_class[m.test_class]
                      if v in train_videos[m.train_class]})
        if unknown_train:
            notes.append(f"{len(unknown_train)} training classes of {train_dataset} have no known name "
                         "and were not audited")
    if not pretraining:
        return LeakageReport(train_dataset, test_dataset, n_test, cross, tuple(seen), len(test_split), shared,
                             notes=tuple(notes))
    auditable, pre = True, []
    for src in resolve_pretraining(pretraining, table):
        if isinstance(src, str):
            auditable = False
            notes.append(f"unknown pretraining source {src!r}: add it to datasets/leakage/{TABLE}")
            continue
        notes.append(src.note)
        auditable = auditable and src.auditable
        pre += [Match(t, c, r, c, test[t][-1]) for t, c, r in overlap(list(src.labels), test, table)]
    return LeakageReport(train_dataset, test_dataset, n_test, cross, tuple(seen), len(test_split), shared,
                         pretraining, auditable, tuple(pre), tuple(n for n in notes if n))
