"""`fsar-bench data prepare|check`."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

app = typer.Typer(help="Prepare the generated toy datasets; check real ones.\n\n"
                  "Examples:\n\n"
                  "\b\n"
                  "  fsar-bench data prepare toy-motion --root ./data/toy-motion\n"
                  "  fsar-bench data check ucf101 --root /data/ucf101/videos\n"
                  "  fsar-bench data check ssv2_small --split test",
                  no_args_is_help=True)


@app.command()
def prepare(dataset: str = typer.Argument(..., help="toy-motion or toy-appearance"),
            root: Optional[Path] = typer.Option(None, help="target folder (default: <data_root>/<dataset>)"),
            config: Optional[Path] = typer.Option(None, help="bench.yaml to read")) -> None:
    """Generate a toy dataset (deterministic: the same bytes on every machine run).

    Examples:

    \b
      fsar-bench data prepare toy-motion --root ./data/toy-motion
      fsar-bench data prepare toy-appearance
    """
    from fsar_bench.config import load_config
    from fsar_bench.data import toy
    from fsar_bench.data.cards import get_card
    from fsar_bench.errors import FsarError
    from fsar_bench.ui import progress_bar

    card = get_card(dataset)
    if not card.is_toy:
        raise FsarError(f"{dataset} is a real dataset and cannot be generated",
                        f"download it yourself, set datasets.{dataset}.root in bench.yaml, then run `fsar-bench data check {dataset}`")
    cfg = load_config(config)
    target = root or cfg.data_root / card.name
    if toy.is_prepared(target, card):
        toy.verify(target, card, digests=True)
        typer.echo(f"{dataset} is already prepared at {target}")
        return
    with progress_bar(f"generating {dataset}") as update:
        toy.generate(card, target, progress=update)
    typer.echo(f"wrote {dataset} to {target} (manifest: {target / toy.MANIFEST})")


SHOW = 20  # missing / corrupt files listed on the terminal (all of them are in the manifest)


@app.command()
def check(dataset: str = typer.Argument(..., help="dataset name, e.g. ucf101 (`fsar-bench list datasets`)"),
          root: Optional[Path] = typer.Option(None, help="dataset folder (default: datasets.<name>.root in bench.yaml)"),
          split: Optional[list[str]] = typer.Option(None, "--split", metavar="SPLIT", help="split to check; repeat for several (default: all)"),
          frames: int = typer.Option(8, help="frames per video to decode (the test-time segment centres)"),
          output: Optional[Path] = typer.Option(None, help="manifest file (default: <results_dir>/cache/availability/"
                                                               "<dataset>-<root digest>.json; never inside the root)"),
          results_dir: Optional[Path] = typer.Option(None, "--results-dir", help="results folder whose cache/ holds "
                                                     "the manifest (default: results_dir in bench.yaml, fsar-runs)"),
          config: Optional[Path] = typer.Option(None, help="bench.yaml to read")) -> None:
    """Check that every video of a dataset exists and decodes; write an availability manifest.

    Frame folders: every frame's start and end markers are checked and the test frames decoded.
    The dataset root is only read (it may be a read-only mount). Exit code 0 when every video is
    usable, 1 when some are missing or corrupt, 2 on usage errors.

    Examples:

    \b
      fsar-bench data check ucf101 --root /data/ucf101/videos --split test
      fsar-bench data check ssv2_small
      fsar-bench data check toy-motion --root ./data/toy-motion
      fsar-bench data check hmdb51 --output hmdb51-manifest.json
    """
    import sys

    from fsar_bench.config import load_config
    from fsar_bench.data.cards import get_card
    from fsar_bench.data.check import check_dataset
    from fsar_bench.data.source import VideoSource
    from fsar_bench.errors import FsarError
    from fsar_bench.ui import progress_bar

    card = get_card(dataset)
    cfg = load_config(config)
    if results_dir:
        cfg.data["results_dir"] = str(results_dir)
    source = VideoSource.open(card, cfg, root)
    if card.is_toy:  # every file against its SHA-256 in the manifest (a run checks the sizes only)
        from fsar_bench.data import toy

        toy.verify(source.root, card, digests=True)
    splits = split or list(card.split_files)
    with progress_bar(f"checking {dataset}") as update:
        report = check_dataset(source, splits, frames=frames, progress=update, output=output,
                               cache_dir=cfg.results_dir / "cache")

    typer.echo(f"{dataset} at {source.root} (layout {source.layout.kind} {source.layout.pattern!r}, {frames} frames)")
    rows = [("split", "videos", "available", "missing", "corrupt")]
    rows += [(s, str(c.videos), str(c.available), str(c.missing), str(c.corrupt)) for s, c in report.splits.items()]
    if len(report.splits) > 1:
        rows.append(("total", str(report.total), str(report.available), str(len(report.missing)),
                     str(len(report.corrupt))))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        typer.echo("  ".join(r[0].ljust(widths[0]) if i == 0 else r[i].rjust(widths[i]) for i in range(len(r))))

    for title, keys in (("missing", report.missing), ("corrupt", list(report.corrupt))):
        if not keys:
            continue
        typer.echo(f"\n{title} ({len(keys)}):")
        for k in keys[:SHOW]:
            reason = f"  ({report.corrupt[k]})" if title == "corrupt" else ""
            typer.echo(f"  {report.paths[k]}{reason}")
        if len(keys) > SHOW:
            typer.echo(f"  ... and {len(keys) - SHOW} more (all listed in the manifest)")

    if report.manifest:
        typer.echo(f"\nmanifest: {report.manifest} (digest {report.digest[:16]}...)")
    if report.manifest_error:
        raise FsarError(report.manifest_error,
                        "pass --output FILE or --results-dir DIR to write the manifest elsewhere")
    if not report.ok:
        bad = len(report.missing) + len(report.corrupt)
        typer.echo(f"error: {bad} of {report.total} videos of {dataset} are missing or corrupt; re-download them, "
                   "or run with `--allow-missing` (the run is then marked non-canonical)", err=True)
        sys.exit(1)  # not typer.Exit: the console script runs click with standalone_mode=False
    typer.echo(f"all {report.total} videos are present and decode")
