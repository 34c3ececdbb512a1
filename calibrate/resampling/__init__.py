"""Bootstrap intervals over the same statistics as the metrics; one interval type."""

from calibrate.resampling.bootstrap import (
    Interval,
    PairedInterval,
    bootstrap_ci,
    paired_bootstrap_ci,
)

__all__ = ["Interval", "PairedInterval", "bootstrap_ci", "paired_bootstrap_ci"]
