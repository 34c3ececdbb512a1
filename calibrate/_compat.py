"""Module paths of release 0.1, kept importable for one release with a DeprecationWarning.

``import calibrate.selective`` (or ``calibrate.selective`` after ``import calibrate``) gives
:mod:`calibrate.metrics.selective` and warns once per name with the new path.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import warnings

#: old module path -> new module path (a package's submodules follow their package)
MOVED = {
    "calibrate.bootstrap": "calibrate.resampling.bootstrap",
    "calibrate.streaming": "calibrate.backends.streaming",
    "calibrate.summary": "calibrate.metrics.summary",
    "calibrate.smooth": "calibrate.metrics.smooth",
    "calibrate.decomposition": "calibrate.metrics.decomposition",
    "calibrate.selective": "calibrate.metrics.selective",
    "calibrate.ood": "calibrate.metrics.ood",
    "calibrate.uncertainty": "calibrate.metrics.uncertainty",
    "calibrate.outputs": "calibrate.io.outputs",
    "calibrate.examples": "calibrate.io.examples",
    "calibrate.sklearn": "calibrate.integrations.sklearn",
    "calibrate.torch": "calibrate.integrations.torch",
    "calibrate.cifar10": "calibrate.apps.cifar10",
}
MOVED_TOP = {old.split(".", 1)[1] for old in MOVED}


def new_name(old: str) -> str | None:
    for prefix, new in MOVED.items():
        if old == prefix or old.startswith(prefix + "."):
            return new + old[len(prefix):]
    return None


def import_moved(old: str, stacklevel: int = 2):
    new = new_name(old)
    warnings.warn(f"{old} is deprecated and will be removed in the next release; use {new}",
                  DeprecationWarning, stacklevel=stacklevel)
    return importlib.import_module(new)


class _Alias(importlib.abc.Loader):
    def __init__(self, old):
        self.old = old

    def create_module(self, spec):
        return import_moved(self.old, stacklevel=4)

    def exec_module(self, module):
        pass


class _MovedFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path=None, target=None):
        if new_name(fullname) is None:
            return None
        return importlib.util.spec_from_loader(fullname, _Alias(fullname))


def install() -> None:
    if not any(isinstance(f, _MovedFinder) for f in sys.meta_path):
        sys.meta_path.append(_MovedFinder())
