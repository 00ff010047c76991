"""Back ends chosen by name: a factory registered under a name (``mask``) or a prefix (``hf``, ``api``)."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Generic, TypeVar

from synthmed.errors import ConfigError

T = TypeVar("T")


class PrefixRegistry(Generic[T]):
    """Factories of one kind of back end; ``"hf:some/model"`` calls the ``hf`` factory with ``model="some/model"``.

    Args:
        kind: What the factories build, for error messages ("captioner").
        modules: Modules whose factories register themselves on import; imported on first lookup.
    """

    def __init__(self, kind: str, modules: tuple[str, ...]) -> None:
        self.kind = kind
        self._modules = modules
        self._factories: dict[str, Callable[..., T]] = {}

    def register(self, prefix: str) -> Callable[[Callable[..., T]], Callable[..., T]]:
        """A decorator registering a factory under ``prefix``."""

        def deco(factory: Callable[..., T]) -> Callable[..., T]:
            self._factories[prefix] = factory
            return factory

        return deco

    def names(self) -> list[str]:
        """The registered names and prefixes, sorted."""
        for module in self._modules:
            importlib.import_module(module)
        return sorted(self._factories)

    def build(self, name: str, **options: object) -> T:
        """Call the factory ``name`` (or its prefix) names, passing ``model=`` the part after ``:``.

        Raises:
            ConfigError: unknown name (the message lists the valid ones).
        """
        names = self.names()
        prefix, _, model = name.partition(":")
        if prefix not in self._factories:
            raise ConfigError(f"unknown {self.kind} {name!r}; available: {', '.join(names)}")
        if model:
            options = {**options, "model": model}
        return self._factories[prefix](**options)
