"""Every package folder is installed (the explicit list in pyproject.toml is easy to forget)."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MAPPING = {"fsar_bench": "fsar_bench", "fsar_methods": "methods", "fsar_datasets": "datasets",
           "fsar_leaderboards": "leaderboards"}


def test_all_packages_listed():
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = set(MAPPING)  # the mapped top-level folders (namespace packages for the data folders)
    for name, folder in MAPPING.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / folder)
            found.add(".".join([name, *rel.parts]))
    assert found == listed


def test_no_generic_top_level_packages():
    """`methods/`, `datasets/` and `leaderboards/` have no __init__.py: run from the repo root, they can
    never shadow a real package such as Hugging Face's `datasets` (a regular package always wins over
    a namespace portion)."""
    for folder in ("methods", "datasets", "leaderboards"):
        assert not (ROOT / folder / "__init__.py").exists()
