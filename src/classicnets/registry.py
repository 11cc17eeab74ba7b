"""A small generic name -> builder registry, used for models and data sets."""

import difflib
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from classicnets.errors import UserError

T = TypeVar("T")


class UnknownNameError(UserError, KeyError):
    """An unknown registry name; the message lists the closest names and all choices."""

    def __str__(self) -> str:
        return str(self.args[0])


class Registry(Generic[T]):
    """Maps names to builders, with free-form metadata (input size, paper section) per name."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._builders: dict[str, T] = {}
        self._meta: dict[str, dict[str, Any]] = {}

    def register(self, name: str, **meta: Any) -> Callable[[T], T]:
        def decorator(builder: T) -> T:
            if name in self._builders:
                raise ValueError(f"{self.kind} {name!r} is already registered")
            self._builders[name] = builder
            self._meta[name] = meta
            return builder

        return decorator

    def get(self, name: str) -> T:
        if name not in self._builders:
            raise UnknownNameError(self.unknown_message(name))
        return self._builders[name]

    def meta(self, name: str) -> dict[str, Any]:
        self.get(name)
        return dict(self._meta[name])

    def names(self) -> list[str]:
        return sorted(self._builders)

    def __contains__(self, name: object) -> bool:
        return name in self._builders

    def unknown_message(self, name: str) -> str:
        close = difflib.get_close_matches(name, self.names(), n=3, cutoff=0.5)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        return f"unknown {self.kind} {name!r}.{hint} Choices: {', '.join(self.names())}"
