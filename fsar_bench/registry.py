"""Registries of methods and matchers, discovered through entry points.

Built-in methods and matchers are declared in pyproject.toml under the same entry-point groups
a third-party package uses (`fsar_bench.methods`, `fsar_bench.matchers`), so the core never
names a method. One generic `Registry[T]` serves both: lazy loading, did-you-mean, origin and
status; a plugin that fails to import is listed as unavailable with its reason instead of
breaking the CLI. `create_method` resolves the matcher class here and hands it to the method,
so the protocol (fsar_bench.protocol) imports no registry.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any, Generic, TypeVar

from fsar_bench.errors import FsarError, unknown
from fsar_bench.protocol import Matcher, Method, check_init_kwargs, register_matcher_resolver

METHOD_GROUP = "fsar_bench.methods"
MATCHER_GROUP = "fsar_bench.matchers"
MATCHER_PREFIX = "matcher."  # overrides named matcher.<key> are matcher hyperparameters
T = TypeVar("T", bound=type)


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


class Registry(Generic[T]):
    """The classes registered under one entry-point group, each a subclass of `base`."""

    def __init__(self, kind: str, group: str, base: T, describe: Callable[[T], str]) -> None:
        self.kind, self.group, self.base, self.describe = kind, group, base, describe
        self.runtime: dict[str, Entry] = {}  # registered from Python (notebooks, tests)
        self._discovered: dict[str, Entry] | None = None

    def refresh(self) -> None:
        """Forget discovered entry points (after installing a plugin in the same process)."""
        self._discovered = None

    def entries(self) -> dict[str, Entry]:
        """Every registered name, sorted; run-time registrations shadow entry points."""
        if self._discovered is None:
            self._discovered = {}
            for ep in entry_points(group=self.group):
                dist = getattr(ep, "dist", None)
                origin = f"{dist.name} {dist.version}" if dist is not None else "unknown"
                self._discovered[ep.name] = Entry(ep.name, ep.value, origin)
        return dict(sorted({**self._discovered, **self.runtime}.items()))

    def names(self) -> list[str]:
        return list(self.entries())

    def register(self, name: str, cls: T) -> None:
        self.runtime[name] = Entry(name, f"{cls.__module__}:{cls.__qualname__}", "runtime", obj=cls)

    def get(self, name: str) -> T:
        """The class registered as `name` (its `name` attribute set to it); one-line errors otherwise."""
        entries = self.entries()
        if name not in entries:
            raise unknown(self.kind, name, entries, f"run `fsar-bench list {self.kind}s`")
        cls = entries[name].load()
        if not (isinstance(cls, type) and issubclass(cls, self.base)):
            base = f"fsar_bench.{self.base.__name__}"
            raise FsarError(f"plugin {name!r} ({entries[name].target}) is not a {base} subclass",
                            f"subclass {base} in the plugin")
        cls.name = name
        return cls  # type: ignore[return-value]

    def status(self, name: str) -> tuple[str, str]:
        """('ok', a one-line description) or ('unavailable', why), for listings."""
        entry = self.entries()[name]
        try:
            return "ok", self.describe(entry.load())
        except Exception:  # noqa: BLE001  (listing must survive any plugin)
            return "unavailable", entry.error or "failed to load"


def _describe_method(cls: type[Method]) -> str:
    return f"presets: {', '.join(cls.presets)}; default matcher: {cls.default_matcher}"


def _describe_matcher(cls: type[Matcher]) -> str:
    return (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else ""


METHODS: Registry[type[Method]] = Registry("method", METHOD_GROUP, Method, _describe_method)
MATCHERS: Registry[type[Matcher]] = Registry("matcher", MATCHER_GROUP, Matcher, _describe_matcher)
_runtime: dict[str, dict[str, Entry]] = {METHOD_GROUP: METHODS.runtime, MATCHER_GROUP: MATCHERS.runtime}


def refresh() -> None:
    """Forget discovered entry points of both groups."""
    METHODS.refresh()
    MATCHERS.refresh()


def register_method(name: str, cls: type[Method]) -> None:
    """Register a method class at run time (notebooks, tests); packages use entry points."""
    METHODS.register(name, cls)


def register_matcher(name: str, cls: type[Matcher]) -> None:
    MATCHERS.register(name, cls)


def method_entries() -> dict[str, Entry]:
    return METHODS.entries()


def matcher_entries() -> dict[str, Entry]:
    return MATCHERS.entries()


def list_methods() -> list[str]:
    return METHODS.names()


def list_matchers() -> list[str]:
    return MATCHERS.names()


def method_class(name: str) -> type[Method]:
    return METHODS.get(name)


def matcher_class(name: str) -> type[Matcher]:
    return MATCHERS.get(name)


def resolve_hparams(name: str, preset: str = "full", **overrides: Any) -> dict[str, Any]:
    """The keyword arguments `create_method` would pass: preset values, then overrides."""
    cls = method_class(name)
    if preset not in cls.presets:
        raise unknown(f"preset of method {name!r},", preset, cls.presets)
    hparams = {**cls.presets[preset], **overrides}
    check_init_kwargs("method", name, cls, hparams)
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
    `matcher` swaps the matcher (the papers' "Method (TRX)" variants). Matcher hyperparameters come
    in `matcher_kwargs` or as overrides named `matcher.<key>` (the CLI's `--set matcher.gamma=0.5`).
    """
    cls = method_class(name)
    matcher_kwargs = {**(matcher_kwargs or {}), **{k[len(MATCHER_PREFIX):]: v for k, v in overrides.items()
                                                   if k.startswith(MATCHER_PREFIX)}}
    overrides = {k: v for k, v in overrides.items() if not k.startswith(MATCHER_PREFIX)}
    hparams = resolve_hparams(name, preset, **overrides)
    method = cls(**hparams)
    method.hparams = dict(hparams)
    method.preset = preset
    matcher = matcher or cls.default_matcher
    method.set_matcher(matcher, matcher_class(matcher), **matcher_kwargs)
    method.matcher_hparams = dict(matcher_kwargs)
    return method


register_matcher_resolver(matcher_class)


def create_matcher(name: str, **kwargs: Any) -> Matcher:
    cls = matcher_class(name)
    check_init_kwargs("matcher", name, cls, kwargs)
    return cls(**kwargs)
