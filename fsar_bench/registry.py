"""Registry of methods and matchers, discovered through entry points.

Built-in methods and matchers are declared in pyproject.toml under the same entry-point groups
a third-party package uses (`fsar_bench.methods`, `fsar_bench.matchers`), so the core never
names a method. Entry points are loaded lazily; a plugin that fails to import is listed as
unavailable with its reason instead of breaking the CLI.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any

from fsar_bench.errors import FsarError, unknown
from fsar_bench.protocol import Matcher, Method

METHOD_GROUP = "fsar_bench.methods"
MATCHER_GROUP = "fsar_bench.matchers"


@dataclass
class Entry:
    """One registered name: where it comes from, and (once loaded) its class or the load error."""

    name: str
    target: str  # "module:object"
    origin: str  # distribution name, or "runtime"
    obj: type | None = None
    error: str | None = None

    def load(self) -> type:
        if self.obj is None and self.error is None:
            module_name, _, attr = self.target.partition(":")
            try:
                import importlib

                obj: Any = importlib.import_module(module_name)
                for part in attr.split("."):
                    obj = getattr(obj, part)
                self.obj = obj
            except Exception as exc:  # a broken plugin must not break the CLI
                self.error = f"{type(exc).__name__}: {exc}".splitlines()[0]
        if self.obj is None:
            raise FsarError(f"plugin {self.name!r} ({self.target}, from {self.origin}) failed to import: "
                            f"{self.error}", "fix or uninstall that package")
        return self.obj


_runtime: dict[str, dict[str, Entry]] = {METHOD_GROUP: {}, MATCHER_GROUP: {}}
_cache: dict[str, dict[str, Entry]] = {}


def _entries(group: str) -> dict[str, Entry]:
    if group not in _cache:
        found: dict[str, Entry] = {}
        for ep in entry_points(group=group):
            dist = getattr(ep, "dist", None)
            origin = f"{dist.name} {dist.version}" if dist is not None else "unknown"
            found[ep.name] = Entry(ep.name, ep.value, origin)
        _cache[group] = found
    return {**_cache[group], **_runtime[group]}


def refresh() -> None:
    """Forget discovered entry points (after installing a plugin in the same process)."""
    _cache.clear()


def register_method(name: str, cls: type[Method]) -> None:
    """Register a method class at run time (notebooks, tests); packages use entry points."""
    _runtime[METHOD_GROUP][name] = Entry(name, f"{cls.__module__}:{cls.__qualname__}", "runtime", obj=cls)


def register_matcher(name: str, cls: type[Matcher]) -> None:
    _runtime[MATCHER_GROUP][name] = Entry(name, f"{cls.__module__}:{cls.__qualname__}", "runtime", obj=cls)


def method_entries() -> dict[str, Entry]:
    return dict(sorted(_entries(METHOD_GROUP).items()))


def matcher_entries() -> dict[str, Entry]:
    return dict(sorted(_entries(MATCHER_GROUP).items()))


def list_methods() -> list[str]:
    return list(method_entries())


def list_matchers() -> list[str]:
    return list(matcher_entries())


def method_class(name: str) -> type[Method]:
    entries = method_entries()
    if name not in entries:
        raise unknown("method", name, entries, "run `fsar-bench list methods`")
    cls = entries[name].load()
    if not (isinstance(cls, type) and issubclass(cls, Method)):
        raise FsarError(f"plugin {name!r} ({entries[name].target}) is not a fsar_bench.Method subclass",
                        "subclass fsar_bench.Method in the plugin")
    cls.name = name
    return cls


def matcher_class(name: str) -> type[Matcher]:
    entries = matcher_entries()
    if name not in entries:
        raise unknown("matcher", name, entries, "run `fsar-bench list matchers`")
    cls = entries[name].load()
    if not (isinstance(cls, type) and issubclass(cls, Matcher)):
        raise FsarError(f"plugin {name!r} ({entries[name].target}) is not a fsar_bench.Matcher subclass",
                        "subclass fsar_bench.Matcher in the plugin")
    cls.name = name
    return cls


def _check_kwargs(kind: str, name: str, cls: type, kwargs: dict[str, Any]) -> None:
    params = inspect.signature(cls.__init__).parameters
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return
    allowed = [p for p in params if p != "self"]
    for key in kwargs:
        if key not in allowed:
            raise unknown(f"hyperparameter of {kind} {name!r},", key, allowed)


def resolve_hparams(name: str, preset: str = "full", **overrides: Any) -> dict[str, Any]:
    """The keyword arguments `create_method` would pass: preset values, then overrides."""
    cls = method_class(name)
    if preset not in cls.presets:
        raise unknown(f"preset of method {name!r},", preset, cls.presets)
    hparams = {**cls.presets[preset], **overrides}
    _check_kwargs("method", name, cls, hparams)
    return hparams


def random_init_overrides(name: str, preset: str) -> dict[str, Any]:
    """Overrides that build `preset` without fetching pretrained weights (tests, profiling, offline).

    Methods take `pretrained` either as a bool (timm) or as an open_clip tag (None = random init).
    """
    cls = method_class(name)
    if "pretrained" not in inspect.signature(cls.__init__).parameters:
        return {}
    value = cls.presets.get(preset, {}).get("pretrained")
    return {"pretrained": False if isinstance(value, bool) else None}


def create_method(name: str, preset: str = "full", matcher: str | None = None,
                  matcher_kwargs: dict[str, Any] | None = None, **overrides: Any) -> Method:
    """Build a method by name, e.g. `create_method('protonet', preset='tiny', lr=1e-3)`.

    `preset` picks the method's `full` (paper) or `tiny` (CPU) defaults; keyword overrides win.
    `matcher` swaps the matcher (the papers' "Method (TRX)" variants).
    """
    cls = method_class(name)
    hparams = resolve_hparams(name, preset, **overrides)
    method = cls(**hparams)
    method.hparams = dict(hparams)
    method.preset = preset
    method.set_matcher(matcher or cls.default_matcher, **(matcher_kwargs or {}))
    return method


def create_matcher(name: str, **kwargs: Any) -> Matcher:
    cls = matcher_class(name)
    _check_kwargs("matcher", name, cls, kwargs)
    return cls(**kwargs)
