"""Bootstrap intervals over the same statistics as the metrics; one interval type.

bootstrap (bootstrap_ci, paired_bootstrap_ci, bootstrap_many: resample weights over the
statistics of :mod:`calibrate._core.stats`), tables (the report's metric table and paired
differences), selective (risk-coverage intervals and bands), detection (OOD detection
intervals), smooth (smooth ECE interval), grouped (per-group global vs grouped calibrator).
"""

from calibrate.resampling import bootstrap, detection, grouped, selective, smooth, tables
from calibrate.resampling.bootstrap import (
           Interval,
           PairedInterval,
           bootstrap_ci,
           paired_bootstrap_ci,
)

__all__ = ["Interval", "PairedInterval", "bootstrap", "bootstrap_ci", "detection", "grouped", "paired_bootstrap_ci",
           "selective", "smooth", "tables"]
