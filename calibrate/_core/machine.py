"""What machine this is, in the words every report and message uses (numpy core, no torch).

``cpu_model()`` is /proc/cpuinfo's "model name" (else ``platform.processor()``),
``cpu_flags()`` its feature flags ("flags" on x86, "Features" on Arm), and
``human_duration(seconds)`` the "90 s / 12 min / 3.1 h" form of an estimate.
"""

from __future__ import annotations

import platform

_CPUINFO = "/proc/cpuinfo"


def _cpuinfo_field(*names: str) -> str | None:
    try:
        with open(_CPUINFO) as fh:
            for line in fh:
                if line.split(":", 1)[0].strip() in names:
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def cpu_model() -> str:
    """The CPU's marketing name, e.g. "AMD EPYC"; the platform's word for it elsewhere."""
    return _cpuinfo_field("model name") or platform.processor() or platform.machine()


def cpu_flags() -> set:
    """The CPU's feature flags (empty where /proc/cpuinfo does not exist)."""
    return set((_cpuinfo_field("flags", "Features") or "").split())


def human_duration(seconds: float) -> str:
    """An estimate as a person reads it: seconds below 2 minutes, minutes below 2 hours, else hours."""
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
