"""The one interval type every public function returns: :class:`Interval`.

Fields: low, high, estimate (the number on the full sample), confidence_level (the
interval's nominal coverage), n_resamples, method ("percentile", "basic", "bca") and
scheme (how rows were resampled). ``low, high = interval`` unpacks it; ``to_dict()`` is
its JSON form ({"estimate", "low", "high", "confidence"}, the keys the reports write).
Subclasses add what belongs to one kind of interval (a paired p-value, a bandwidth).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

from calibrate._core.validation import renamed_keywords


@dataclass(frozen=True)
class Interval:
    """A confidence interval; unpacks as ``low, high = interval``."""

    low: float
    high: float
    estimate: float  # the metric on the full sample (for a paired interval: b minus a)
    confidence_level: float
    n_resamples: int
    method: str = "percentile"
    scheme: str = "multinomial"

    def __iter__(self):
        return iter((self.low, self.high))

    def __getitem__(self, i):
        if isinstance(i, str):  # the dicts that some functions returned before
            d = self.to_dict()
            if i not in d:
                raise KeyError(i)
            warnings.warn(f"{type(self).__name__}[{i!r}]: intervals are no longer dicts; use the attribute "
                          f"(.{'confidence_level' if i == 'confidence' else i}) or to_dict()",
                          DeprecationWarning, stacklevel=2)
            return d[i]
        return (self.low, self.high)[i]

    def __len__(self):
        return 2

    @property
    def confidence(self) -> float:
        """Deprecated name of ``confidence_level``."""
        warnings.warn("Interval.confidence is now Interval.confidence_level; the old name will be removed in the "
                      "next release", DeprecationWarning, stacklevel=2)
        return self.confidence_level

    def to_dict(self) -> dict:
        return {"estimate": self.estimate, "low": self.low, "high": self.high, "confidence": self.confidence_level}


@dataclass(frozen=True)
class PairedInterval(Interval):
    """Interval of metric(b) - metric(a) over the same resamples.

    p_value: two-sided bootstrap p-value of "no difference": twice the smaller fraction of
    resamples on either side of 0 (at least 1 / n_resamples).
    """

    p_value: float = 1.0

    def to_dict(self):
        return {**super().to_dict(), "p_value": self.p_value}


@dataclass(frozen=True)
class SmoothECEInterval(Interval):
    """Interval of the smooth ECE at the fixed bandwidth ``sigma``."""

    sigma: float = float("nan")

    def to_dict(self):
        return {**super().to_dict(), "sigma": self.sigma}


for _cls in (Interval, PairedInterval, SmoothECEInterval):
    _cls.__init__ = renamed_keywords(confidence="confidence_level")(_cls.__init__)
del _cls
