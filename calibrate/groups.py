"""Per-group calibration: every metric of ``calibrate evaluate`` for each group of rows (a
value of a group column, or a combination of several), with bootstrap intervals, the worst
group and each group's gap to the overall value (see :mod:`calibrate.resampling.groups`;
the per-group numbers and codes are in :mod:`calibrate.metrics.groups`)."""

from calibrate.metrics.groups import (
    GROUP_METRICS,
    MIN_COUNT,
    group_codes,
    group_point_metrics,
    row_values,
)
from calibrate.resampling.groups import (
    INTERVAL_METRICS,
    GroupMetrics,
    group_metrics,
    group_metrics_from_rows,
)

__all__ = [
    "GROUP_METRICS",
    "INTERVAL_METRICS",
    "MIN_COUNT",
    "GroupMetrics",
    "group_codes",
    "group_metrics",
    "group_metrics_from_rows",
    "group_point_metrics",
    "row_values",
]
