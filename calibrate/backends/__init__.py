"""Where the statistics of :mod:`calibrate._core.stats` are accumulated.

streaming: an accumulator updated in batches and merged across processes; dask: the same
statistics mapped over the chunks of a Dask array and merged (imported here so that it
registers with :mod:`calibrate._core.dispatch`). Both import only ``_core``.
"""

from calibrate.backends import dask as _dask_backend  # noqa: F401 (registers the Dask backend)
from calibrate.backends import streaming

__all__ = ["streaming"]
