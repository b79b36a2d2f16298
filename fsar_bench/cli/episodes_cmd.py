"""`fsar-bench episodes show|export|verify|lock` (the protocol: docs/episodes.md)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Optional

import typer

from fsar_bench.episodes import CANONICAL_EPISODES, VAL_EPISODES
from fsar_bench.io import atomic_path
from fsar_bench.ui import plural

app = typer.Typer(help="Frozen canonical episodes: show, export, verify (and lock, for maintainers).\n\n"
                  "Examples:\n\n"
                  "\b\n"
                  "  fsar-bench episodes show --dataset ucf101 --way 5 --shot 1\n"
                  "  fsar-bench episodes export --dataset ucf101 --output ucf101-5w1s.jsonl\n"
                  "  fsar-bench episodes verify",
                  no_args_is_help=True)

DEFAULT_EPISODES = {"test": CANONICAL_EPISODES, "val": VAL_EPISODES}

# Shared options of `show` and `export`.
_DATASET = typer.Option(..., "--dataset", "-d", help="dataset card name (`fsar-bench list datasets`)")
_SPLIT = typer.Option("test", help="split to draw from: test (the benchmark), val (model selection) or train")
_WAY = typer.Option(5, min=1, help="classes per episode (N)")
_SHOT = typer.Option(1, min=0, help="support videos per class (K; 0 = zero-shot)")
_QUERY = typer.Option(1, min=1, help="query videos per class (1 is canonical)")
_EPISODES = typer.Option(None, min=1, help="number of episodes (default: 10,000 for test, 1,000 for val)")
_SEED = typer.Option(None, help="seed string (default: the card's frozen seed of the split)")


def _spec(dataset: str, split: str, way: int, shot: int, query: int, episodes: Optional[int], seed: Optional[str]):
    from fsar_bench.data.cards import get_card
    from fsar_bench.episodes.sampler import EpisodeSpec
    from fsar_bench.errors import FsarError

    card = get_card(dataset)
    card.split(split)  # unknown split -> FsarError with the known ones
    if seed is None:
        if split not in card.seeds:
            raise FsarError(f"dataset {card.name} has no frozen seed for the {split} split",
                            "pass --seed (e.g. --seed train/0: the training episodes of `fsar-bench run` "
                            "with its default seed)")
        seed = card.seeds[split]
    n = episodes if episodes is not None else DEFAULT_EPISODES.get(split, CANONICAL_EPISODES)
    return card, EpisodeSpec(card.name, split, way, shot, query, n, seed)


def _status(card, es) -> tuple[bool, str]:
    """(canonical, explanation) of an episode set, never raising on a digest mismatch."""
    from fsar_bench.episodes.locks import canonicity, read_lock, standard_specs
    from fsar_bench.errors import FsarError

    if es.spec.key not in read_lock(card) and es.spec in standard_specs(card):
        return False, (f"a standard set, but datasets/{card.folder.name}/episodes.lock.yaml has no digest for it; "
                       f"run `fsar-bench episodes verify -d {card.name}`")
    try:
        c = canonicity(card, es)
    except FsarError as exc:
        return False, f"DIGEST MISMATCH: {exc.problem}; run `fsar-bench episodes verify -d {card.name}`"
    return c.canonical, c.reason


def _describe(spec) -> str:
    return (f"{spec.dataset} {spec.split}, {spec.way}-way {spec.shot}-shot, {spec.query} "
            f"quer{'y' if spec.query == 1 else 'ies'} per class, {spec.episodes:,} episodes, seed {spec.seed!r}")


@app.command()
def show(dataset: str = _DATASET, split: str = _SPLIT, way: int = _WAY, shot: int = _SHOT, query: int = _QUERY,
         episodes: Optional[int] = _EPISODES, seed: Optional[str] = _SEED,
         index: int = typer.Option(0, min=0, help="first episode to print"),
         count: int = typer.Option(3, min=0, help="how many episodes to print")) -> None:
    """Print an episode set's spec, digest, canonicity and a few of its episodes.

    Example:

    \b
      fsar-bench episodes show --dataset ucf101 --way 5 --shot 1 --index 0 --count 2
    """
    from fsar_bench.episodes.locks import make_set
    from fsar_bench.errors import FsarError

    card, spec = _spec(dataset, split, way, shot, query, episodes, seed)
    es = make_set(card, spec)
    if index >= spec.episodes:
        raise FsarError(f"episode index {index} is out of range (the set has {spec.episodes} episodes)",
                        f"use --index 0..{spec.episodes - 1}")
    canonical, reason = _status(card, es)
    typer.echo(f"spec       {_describe(spec)}")
    typer.echo(f"set        {spec.key}")
    typer.echo(f"digest     {es.digest}  (sha256 of the .jsonl export)")
    typer.echo(f"canonical  {'yes' if canonical else 'no'} ({reason})")
    for ep in es.episodes[index: index + count]:
        typer.echo("")
        typer.echo(f"episode {ep.index}")
        for label, (cls, sup, qry) in enumerate(zip(ep.classes, ep.support, ep.query)):
            text = card.text_name(cls)
            name = cls if text == cls else f"{cls}  \"{text}\""
            typer.echo(f"  label {label}: {name}")
            typer.echo(f"    support: {', '.join(sup) if sup else '(none)'}")
            typer.echo(f"    query:   {', '.join(qry)}")


def _atomic_write(path: Path, write) -> None:
    """Call write(tmp_path) then move tmp_path over `path` (never a half-written file at `path`)."""
    with atomic_path(path) as tmp:
        write(tmp)


@app.command()
def export(dataset: str = _DATASET, split: str = _SPLIT, way: int = _WAY, shot: int = _SHOT, query: int = _QUERY,
           episodes: Optional[int] = _EPISODES, seed: Optional[str] = _SEED,
           output: Path = typer.Option(..., "--output", "-o", help="FILE.jsonl or FILE.parquet")) -> None:
    """Write an episode set to a file.

    .jsonl: the canonical lines exactly (sha256sum FILE = the set's digest).
    .parquet: one row per episode (index, classes, support, query) plus the spec columns.

    Example:

    \b
      fsar-bench episodes export --dataset ucf101 --way 5 --shot 1 --output ucf101-5w1s.jsonl
    """
    from fsar_bench.episodes.locks import make_set
    from fsar_bench.episodes.sampler import FORMAT
    from fsar_bench.errors import FsarError

    suffix = output.suffix.lower()
    if output.is_dir():
        raise FsarError(f"--output {output} is an existing folder",
                        f"pass a file name, e.g. --output {output / 'episodes.jsonl'}")
    if suffix not in (".jsonl", ".parquet"):
        raise FsarError(f"cannot export to {output.name!r}: unknown format {suffix or '(no suffix)'}",
                        "name the output FILE.jsonl or FILE.parquet")
    from fsar_bench.validate import check_output_file

    check_output_file(output, "--output")  # before drawing the episodes (can take a minute)
    card, spec = _spec(dataset, split, way, shot, query, episodes, seed)
    es = make_set(card, spec)
    canonical, reason = _status(card, es)

    if suffix == ".jsonl":
        def write(tmp: Path) -> None:
            with open(tmp, "wb") as fh:
                for line in es.lines():
                    fh.write(line.encode("utf-8"))
    else:
        def write(tmp: Path) -> None:
            import pyarrow as pa
            import pyarrow.parquet as pq

            n = len(es)
            ids = pa.list_(pa.list_(pa.string()))  # [way][shot] / [way][query]
            columns = {
                "index": pa.array([ep.index for ep in es], pa.int64()),
                "classes": pa.array([list(ep.classes) for ep in es], pa.list_(pa.string())),
                "support": pa.array([[list(s) for s in ep.support] for ep in es], ids),
                "query": pa.array([[list(q) for q in ep.query] for ep in es], ids),
                "dataset": pa.array([spec.dataset] * n, pa.string()),
                "split": pa.array([spec.split] * n, pa.string()),
                "way": pa.array([spec.way] * n, pa.int64()),
                "shot": pa.array([spec.shot] * n, pa.int64()),
                "queries_per_class": pa.array([spec.query] * n, pa.int64()),
                "episodes": pa.array([spec.episodes] * n, pa.int64()),
                "seed": pa.array([spec.seed] * n, pa.string()),
                "digest": pa.array([es.digest] * n, pa.string()),
                "canonical": pa.array([canonical] * n, pa.bool_()),
            }
            meta = {"format": FORMAT, "set": spec.key, "digest": es.digest, "canonical": canonical,
                    "spec": {"dataset": spec.dataset, "split": spec.split, "way": spec.way, "shot": spec.shot,
                             "query": spec.query, "episodes": spec.episodes, "seed": spec.seed}}
            table = pa.table(columns).replace_schema_metadata({"fsar_episodes": json.dumps(meta)})
            pq.write_table(table, tmp)

    try:
        _atomic_write(output, write)
    except OSError as exc:  # what the check above cannot see (a read-only mount seen as root, a full disk)
        raise FsarError(f"cannot write --output {output} ({exc.strerror or type(exc).__name__})",
                        "pass --output in a writable folder") from None
    typer.echo(f"wrote {spec.episodes:,} episodes of {spec.key} ({spec.dataset}) to {output}")
    typer.echo(f"digest {es.digest}; {'canonical' if canonical else 'non-canonical'} ({reason})")


def _digest_job(job: tuple) -> str:
    """Worker: the digest of one (dataset, spec)."""
    from fsar_bench.data.cards import get_card
    from fsar_bench.episodes.locks import make_set

    name, spec = job
    return make_set(get_card(name), spec).digest


def compute_digests(jobs: list[tuple], workers: int) -> list[str]:
    """Digests of (dataset, spec) jobs, on `workers` processes (1 = in this process)."""
    workers = max(1, min(workers, len(jobs)))
    if workers == 1:
        return [_digest_job(j) for j in jobs]
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    def cost(i: int) -> int:  # draws of the set
        spec = jobs[i][1]
        return spec.episodes * spec.way * (1 + spec.shot + spec.query)

    method = "fork" if "fork" in mp.get_all_start_methods() else None  # fork: no re-import per worker
    order = sorted(range(len(jobs)), key=cost, reverse=True)  # largest first: the workers finish together
    with ProcessPoolExecutor(workers, mp_context=mp.get_context(method)) as pool:
        results = dict(zip(order, pool.map(_digest_job, [jobs[i] for i in order])))
    return [results[i] for i in range(len(jobs))]


def _cards(names: Optional[list[str]]):
    from fsar_bench.data.cards import get_card, list_cards

    return [get_card(n) for n in (names or list_cards())]


_JOBS = typer.Option(None, "--jobs", "-j", min=1, help="worker processes (default: the number of CPU cores)")


@app.command()
def verify(dataset: Optional[list[str]] = typer.Option(None, "--dataset", "-d",
                                                       metavar="NAME",
                                                       help="dataset to check (repeatable; default: all cards)"),
           jobs: Optional[int] = _JOBS) -> None:
    """Recompute every standard episode set and compare it with the dataset's lock file.

    Exits 1 if any set differs from its lock or has no lock.
    """
    import time

    from tabulate import tabulate

    from fsar_bench.data.cards import get_card
    from fsar_bench.episodes.locks import LOCK_FILE, read_lock, standard_specs

    start = time.perf_counter()
    cards = _cards(dataset)
    work = [(card, spec) for card in cards for spec in standard_specs(card)]
    digests = compute_digests([(card.name, spec) for card, spec in work], jobs or os.cpu_count() or 1)
    rows, bad, missing = [], [], []
    locks = {card.name: read_lock(card) for card in cards}
    for (card, spec), digest in zip(work, digests):
        lock = locks[card.name].get(spec.key)
        if lock is None:
            status = "MISSING LOCK"
            missing.append(card.name)
        elif lock.get("digest") == digest and lock.get("seed") == spec.seed:
            status = "ok"
            if lock.get("split_sha256") != card.split(spec.split).sha256:
                status = "ok (split list bytes changed, same episodes)"
        else:
            why = []
            if lock.get("seed") != spec.seed:
                why.append("seed changed")
            if lock.get("split_sha256") != card.split(spec.split).sha256:
                why.append("split list changed")
            status = "MISMATCH" + (f" ({', '.join(why)})" if why else " (sampler changed?)")
            bad.append(f"{card.name} {spec.key}")
        rows.append([card.name, spec.key, digest[:12], status])
    for card in cards:  # locked sets that are no longer standard
        standard = {s.key for s in standard_specs(card)}
        for key, lock in locks[card.name].items():
            if key not in standard:
                rows.append([card.name, key, str(lock.get("digest", ""))[:12], "STALE LOCK ENTRY"])
                bad.append(f"{card.name} {key}")
    typer.echo(tabulate(rows, headers=["dataset", "set", "digest", "status"]))
    elapsed = time.perf_counter() - start
    if not bad and not missing:
        typer.echo(f"all {len(work)} standard episode sets of {plural(len(cards), 'dataset')} match their locks "
                   f"({elapsed:.1f} s)")
        return
    problems, fixes = [], []
    if bad:
        verb = "differs from its" if len(bad) == 1 else "differ from their"
        problems.append(f"{plural(len(bad), 'episode set')} {verb} lock ({', '.join(bad[:3])}"
                        f"{', ...' if len(bad) > 3 else ''})")
        fixes.append("restore the split lists and the sampler from git (`git status datasets fsar_bench/episodes`)")
    if missing:
        names = sorted(set(missing))
        problems.append(f"{plural(len(missing), 'set')} " + ("has" if len(missing) == 1 else "have") + " no lock in "
                        + ", ".join(f"datasets/{get_card(n).folder.name}/{LOCK_FILE}" for n in names))
    relock = sorted({b.split()[0] for b in bad} | set(missing))
    fixes.append(("if that change is intended, " if bad else "")
                 + "a maintainer (re)locks with `fsar-bench episodes lock " + " ".join(f"-d {n}" for n in relock) + "`")
    typer.echo(f"error: {'; '.join(problems)}; {' - '.join(fixes)}", err=True)
    sys.exit(1)  # not typer.Exit: the `fsar-bench` entry point runs click with standalone_mode=False


@app.command()
def lock(dataset: Optional[list[str]] = typer.Option(None, "--dataset", "-d",
                                                     metavar="NAME",
                                                     help="dataset to lock (repeatable; default: all cards)")) -> None:
    """MAINTAINERS ONLY: recompute the standard episode sets and rewrite the lock files.

    Re-locking changes the benchmark: results on the old episodes stop being canonical. Only do
    it when a dataset is added or its split list is deliberately corrected, and say so in the
    changelog. Users check their copy with `fsar-bench episodes verify` instead.
    """
    from fsar_bench.episodes.locks import read_lock, standard_specs, write_lock

    for card in _cards(dataset):
        before = read_lock(card)
        path = write_lock(card)
        after = read_lock(card)
        changed = [k for k in after if before.get(k, {}).get("digest") != after[k]["digest"]]
        removed = [k for k in before if k not in after]
        note = (f"{plural(len(changed), 'set')} new or changed" if changed else "unchanged") + (
            f", {len(removed)} removed" if removed else "")
        typer.echo(f"{card.name}: {len(standard_specs(card))} sets -> {path} ({note})")
