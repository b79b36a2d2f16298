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


def _pins() -> dict[str, str]:
    """constraints.txt as {normalised name: version}."""
    from packaging.utils import canonicalize_name

    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        req = line.split(";")[0].strip()
        if req and not req.startswith("#"):
            name, _, version = req.partition("==")
            assert version, f"constraints.txt line is not an exact pin: {line!r}"
            pins[canonicalize_name(name)] = version
    return pins


def test_constraints_pin_every_dependency_within_its_bounds():
    """The tested version set covers every dependency and lies inside pyproject's bounds, so the
    README's `-c constraints.txt` installs exactly what CI ran and the bounds admit it."""
    from packaging.markers import default_environment
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pins = _pins()
    env = default_environment()
    for spec in project["dependencies"] + project["optional-dependencies"]["test"]:
        req = Requirement(spec)
        if req.marker is not None and not req.marker.evaluate(env):
            continue
        name = canonicalize_name(req.name)
        assert name in pins, f"{req.name} has no pin in constraints.txt"
        assert req.specifier.contains(pins[name], prereleases=True), f"{req.name}=={pins[name]} violates {req.specifier}"


def test_readme_commands_install_the_tested_versions():
    text = (ROOT / "README.md").read_text()
    block = text.split("```bash", 1)[1].split("```", 1)[0]
    commands = [ln for ln in block.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    assert len(commands) == 2
    assert all("-c constraints.txt" in c for c in commands)
    assert commands[1].endswith("python -m pytest")
