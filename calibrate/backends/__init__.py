"""Where the statistics of :mod:`calibrate._core.stats` are accumulated.

streaming: an accumulator updated in batches and merged across processes; dask: the same
statistics mapped over the chunks of a Dask array and merged. Both import only ``_core``.
"""

from calibrate.backends import streaming

__all__ = ["streaming"]
