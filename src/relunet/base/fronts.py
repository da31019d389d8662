"""A package front whose public names load on first use (PEP 562's module __getattr__):
relunet's own, relunet.data's and relunet.training.distribute's, so importing a package
costs nothing until one of its names is used."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable


def lazy_names(package: str, public: dict[str, str]) -> tuple[Callable, Callable]:
    """(__getattr__, __dir__) for the front of `package`: each name of `public` (name ->
    the module that defines it) imported from its module when first asked for."""

    def __getattr__(name: str):
        if name in public:
            return getattr(importlib.import_module(public[name]), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__() -> list[str]:
        return sorted([*vars(sys.modules[package]), *public])

    return __getattr__, __dir__
