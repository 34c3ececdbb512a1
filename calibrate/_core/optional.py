"""Optional dependencies: torch is not installed by ``pip install calibrate``.

What needs it (reading ``.pt`` files, ``calibrate experiment``, :mod:`calibrate.integrations.torch`)
calls :func:`require_torch` first, which fails with one line naming the install command
instead of a ``ModuleNotFoundError`` traceback.
"""

from __future__ import annotations

from calibrate._core.validation import InputError

TORCH_HINT = "this needs torch: pip install 'calibrate[torch]'"


class MissingDependencyError(InputError, ImportError):
    """An optional dependency is not installed. An ImportError and a one-line InputError."""


def require_torch(what: str = ""):
    """Return the ``torch`` module, or raise :class:`MissingDependencyError` saying how to get it."""
    try:
        import torch
    except ImportError:
        raise MissingDependencyError(f"{what}: {TORCH_HINT}" if what else TORCH_HINT) from None
    return torch
