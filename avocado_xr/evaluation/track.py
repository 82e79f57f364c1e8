"""One observed/imputed track pair and every measure of it: the definitions themselves.

:class:`Track` validates the pair once, applies the position mask once, caches what several
measures share (squared errors, top-fraction memberships, peaks) and has one method per
measure holding its formula. The public functions of :mod:`.metrics` and
:func:`avocado_xr.evaluate` both call these methods, so each measure is defined once; see
:mod:`.metrics` for the definitions, ties and sources.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from functools import cached_property

import numpy as np

from ..exceptions import MetricError

__all__ = [
    "ALIASES",
    "DIM_METRIC",
    "HIGHER_IS_BETTER",
    "METRICS",
    "PEAK_THRESHOLD",
    "Track",
    "n_top",
    "resolve_metrics",
    "top_fraction",
]

DIM_METRIC = "metric"
#: arcsinh(-log10 p) at p = 0.01: the Avocado paper's peak threshold ("1.44")
PEAK_THRESHOLD = float(np.arcsinh(2.0))

#: every measure, in the output order of ``evaluate()``: the methods of :class:`Track`
METRICS = (
    ("mse", "mse1obs", "mse1imp", "mseprom", "msegene", "mseenh", "msevar")  # errors
    + ("gwcorr", "gwspear")  # correlations
    + ("match1", "catch1obs", "catch1imp", "aucobs1", "aucimp1")  # top-1% sets
    + ("catchpeakobs", "recall", "precision")  # peaks
)
#: whether a larger value of the measure is better (MSEs: no)
HIGHER_IS_BETTER = {name: not name.startswith("mse") for name in METRICS}
ALIASES = {
    "mseglobal": "mse",
    "peak_recall": "recall",
    "peak_precision": "precision",
    "gwspearman": "gwspear",
}

# ---------------------------------------------------------------------------- helpers


def n_top(n: int, fraction: float) -> int:
    """Size of the "top ``fraction``" of ``n`` positions: ``max(1, floor(n * fraction))``."""
    if not 0 < fraction <= 1:
        raise MetricError(f"fraction must be in (0, 1], got {fraction}.")
    return max(1, math.floor(n * fraction + 1e-9))


def _weighted_mean(values: np.ndarray, weights: np.ndarray) -> float:
    total = weights.sum()
    return float(np.dot(values, weights) / total) if total > 0 else math.nan


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    if a.min() == a.max() or b.min() == b.max():
        return math.nan
    a = a - a.mean()
    b = b - b.mean()
    denominator = math.sqrt(float(np.dot(a, a)) * float(np.dot(b, b)))
    if denominator == 0:
        return math.nan
    return float(np.clip(np.dot(a, b) / denominator, -1.0, 1.0))


def _rank(x: np.ndarray) -> np.ndarray:
    """1-based ranks, ties given their average rank."""
    order = np.argsort(x)
    sorted_x = x[order]
    new = np.r_[True, sorted_x[1:] != sorted_x[:-1]]
    group = np.cumsum(new) - 1
    first = np.flatnonzero(new)
    count = np.diff(np.r_[first, len(x)])
    ranks = np.empty(len(x))
    ranks[order] = (first + (count + 1) / 2.0)[group]
    return ranks


def _auc(score: np.ndarray, positive: np.ndarray) -> float:
    """ROC AUC with fractional labels: each position is positive with weight ``positive``
    and negative with weight ``1 - positive``; tied scores count one half."""
    positive = np.asarray(positive, dtype=np.float64)
    negative = 1.0 - positive
    n_pos, n_neg = positive.sum(), negative.sum()
    if n_pos <= 1e-12 or n_neg <= 1e-12:
        return math.nan
    order = np.argsort(score)
    sorted_score = score[order]
    group = np.cumsum(np.r_[True, sorted_score[1:] != sorted_score[:-1]]) - 1
    pos = np.bincount(group, positive[order])
    neg = np.bincount(group, negative[order])
    below = np.cumsum(neg) - neg
    return float(np.dot(pos, below + 0.5 * neg) / (n_pos * n_neg))


def _share(hits: np.ndarray, of: np.ndarray) -> float:
    """``count(hits) / count(of)``; NaN when ``of`` is all False."""
    total = np.count_nonzero(of)
    return float(np.count_nonzero(hits) / total) if total else math.nan


# ---------------------------------------------------------------------------- one track


def top_fraction(x, fraction: float = 0.01) -> np.ndarray:
    """Membership (0..1) of each position in the top ``fraction`` of ``x``, ties shared.

    ``k = max(1, floor(n * fraction))``. Values above the k-th largest get 1, values below it
    0, and the ``m`` values equal to it share the ``k - a`` remaining slots (``a`` = number of
    values above): each gets ``(k - a) / m``. The memberships sum to ``k``.

    Examples
    --------
    >>> top_fraction([1, 5, 3, 2, 4, 0, 0, 0, 0, 0], 0.1)  # k = 1: the single largest
    array([0., 1., 0., 0., 0., 0., 0., 0., 0., 0.])
    >>> top_fraction([1, 5, 5, 2], 0.25)  # k = 1 slot shared by two tied values
    array([0. , 0.5, 0.5, 0. ])
    """
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 1 or x.size == 0:
        raise MetricError(f"top_fraction needs a non-empty 1-D array, got shape {x.shape}.")
    n = len(x)
    k = n_top(n, fraction)
    if k >= n:
        return np.ones(n)
    kth = np.partition(x, n - k)[n - k]
    above = x > kth
    tied = x == kth
    weights = above.astype(np.float64)
    weights[tied] = (k - np.count_nonzero(above)) / np.count_nonzero(tied)
    return weights


def resolve_metrics(metrics: Iterable[str] | str | None) -> list[str]:
    """Canonical names of the measures asked for (``None``: all of :data:`METRICS`).

    Examples
    --------
    >>> resolve_metrics(["MSEglobal", "AucObs1"])
    ['mse', 'aucobs1']
    """
    if metrics is None:
        return list(METRICS)
    if isinstance(metrics, str):
        metrics = [metrics]
    out = []
    for name in metrics:
        key = str(name).lower()
        key = ALIASES.get(key, key)
        if key not in METRICS:
            raise MetricError(
                f"Unknown metric {name!r}; the known metrics are {list(METRICS)} "
                f"(aliases: {sorted(ALIASES)})."
            )
        if key not in out:
            out.append(key)
    if not out:
        raise MetricError("metrics is empty; pass None for all of them.")
    return out


class Track:
    """One observed track and its imputation, with one method per measure.

    The arrays are checked and ``mask`` applied once; the quantities several measures share
    (squared error, top-fraction memberships, binary peaks) are computed on first use and
    kept. Each method is the definition of the measure of the same name in :data:`METRICS`
    (the functions of this module and :func:`~avocado_xr.evaluate` call
    them); see those functions for the formulas and sources.

    Parameters
    ----------
    y, p : array-like
        The observed and the imputed track, 1-D of equal length, finite where scored.
    mask : array-like of bool, optional
        Positions to score; all by default.
    variance : array-like, optional
        Across-cell-type variance of the assay at each position, for :meth:`msevar` (NaN
        without it).
    promoter, gene_body, enhancer : array-like of bool, optional
        Region masks for :meth:`mseprom`, :meth:`msegene`, :meth:`mseenh` (NaN without them).
    peaks : array-like of bool, optional
        Observed peak calls; ``y >= threshold`` when not given.
    fraction, catch_fraction : float
        The "top 1%" and "top 5%" fractions. Defaults are 0.01 and 0.05.
    threshold : float
        Peak threshold on the signal scale. Default is :data:`PEAK_THRESHOLD`.

    Raises
    ------
    MetricError
        Arrays of the wrong shape or dtype, a non-finite value at a scored position, no
        position to score, or a fraction outside (0, 1].

    Examples
    --------
    >>> track = Track([0.0, 1.0, 2.0, 3.0], [0.0, 1.0, 2.0, 1.0])
    >>> track.mse(), track.mse1obs(), round(track.gwcorr(), 4)  # mse1obs: (3 - 1)^2
    (1.0, 4.0, 0.6325)
    >>> track.obs1  # k = max(1, floor(4 * 0.01)) = 1: the largest observed value
    array([0., 0., 0., 1.])
    >>> [getattr(track, name)() for name in ("match1", "recall", "precision")]
    [0.0, 0.5, 1.0]
    """

    def __init__(
        self,
        y,
        p,
        mask=None,
        *,
        variance=None,
        promoter=None,
        gene_body=None,
        enhancer=None,
        peaks=None,
        fraction: float = 0.01,
        catch_fraction: float = 0.05,
        threshold: float = PEAK_THRESHOLD,
    ):
        y, p = np.asarray(y, dtype=np.float64), np.asarray(p, dtype=np.float64)
        if y.ndim != 1 or p.shape != y.shape:
            raise MetricError(
                f"observed and imputed must be 1-D arrays of equal length, got shapes {y.shape} "
                f"and {p.shape}."
            )
        if mask is not None:
            mask = np.asarray(mask)
            if mask.shape != y.shape or mask.dtype != bool:
                raise MetricError(
                    f"mask must be a boolean array of shape {y.shape}, got {mask.dtype} "
                    f"{mask.shape}."
                )
        self._shape, self._mask = y.shape, mask
        self.y, self.p = self._scored("observed", y), self._scored("imputed", p)
        variance = self._scored("variance", variance)
        self.variance = None if variance is None else variance.astype(np.float64, copy=False)
        regions = {"promoter": promoter, "gene body": gene_body, "enhancer": enhancer}
        self.regions = {
            what: self._scored(what, region, boolean=True) for what, region in regions.items()
        }
        peaks = self._scored("peaks", peaks)
        self.peaks_given = None if peaks is None else peaks.astype(bool, copy=False)
        for name, values in (("observed", self.y), ("imputed", self.p)):
            if not np.isfinite(values).all():
                bad = int(np.count_nonzero(~np.isfinite(values)))
                raise MetricError(
                    f"The {name} track has {bad} non-finite value(s); score only positions "
                    "where both tracks are defined (pass mask=...)."
                )
        if self.y.size == 0:
            raise MetricError("No position to score (empty arrays or an all-False mask).")
        for value in (fraction, catch_fraction):
            n_top(1, value)
        self.fraction, self.catch_fraction, self.threshold = fraction, catch_fraction, threshold

    def _scored(self, name: str, value, boolean: bool = False) -> np.ndarray | None:
        """``value`` (one per position) at the scored positions; None stays None."""
        if value is None:
            return None
        value = np.asarray(value)
        if boolean and value.dtype != bool:
            raise MetricError(f"The {name} mask must be boolean, got {value.dtype}.")
        if value.shape != self._shape:
            raise MetricError(f"{name} has shape {value.shape}, expected {self._shape}.")
        return value if self._mask is None else value[self._mask]

    # ------------------------------------------------------------ shared quantities

    @cached_property
    def error(self) -> np.ndarray:
        """Squared error ``(y - p) ** 2`` at each position."""
        return (self.y - self.p) ** 2

    @cached_property
    def obs1(self) -> np.ndarray:
        """Membership in the top ``fraction`` of the observed track."""
        return top_fraction(self.y, self.fraction)

    @cached_property
    def imp1(self) -> np.ndarray:
        """Membership in the top ``fraction`` of the imputed track."""
        return top_fraction(self.p, self.fraction)

    @cached_property
    def obs5(self) -> np.ndarray:
        """Membership in the top ``catch_fraction`` of the observed track."""
        return top_fraction(self.y, self.catch_fraction)

    @cached_property
    def imp5(self) -> np.ndarray:
        """Membership in the top ``catch_fraction`` of the imputed track."""
        return top_fraction(self.p, self.catch_fraction)

    @cached_property
    def peaks(self) -> np.ndarray:
        """Observed peaks: the given calls, or ``y >= threshold``."""
        return self.y >= self.threshold if self.peaks_given is None else self.peaks_given

    @cached_property
    def called(self) -> np.ndarray:
        """Imputed peaks: ``p >= threshold``."""
        return self.p >= self.threshold

    def _region_mse(self, what: str) -> float:
        region = self.regions[what]
        if region is None or not region.any():
            return math.nan
        return float(self.error[region].mean())

    # ------------------------------------------------------------ the measures

    def mse(self) -> float:
        """Mean squared error over all positions (:func:`mse`)."""
        return float(self.error.mean())

    def mse1obs(self) -> float:
        """MSE over the top-1% observed positions (:func:`mse1obs`)."""
        return _weighted_mean(self.error, self.obs1)

    def mse1imp(self) -> float:
        """MSE over the top-1% imputed positions (:func:`mse1imp`)."""
        return _weighted_mean(self.error, self.imp1)

    def mseprom(self) -> float:
        """MSE over promoter positions (:func:`mseprom`)."""
        return self._region_mse("promoter")

    def msegene(self) -> float:
        """MSE over gene-body positions (:func:`msegene`)."""
        return self._region_mse("gene body")

    def mseenh(self) -> float:
        """MSE over enhancer positions (:func:`mseenh`)."""
        return self._region_mse("enhancer")

    def msevar(self) -> float:
        """MSE weighted by the across-cell-type variance (:func:`msevar`)."""
        if self.variance is None:
            return math.nan
        return _weighted_mean(self.error, self.variance)

    def gwcorr(self) -> float:
        """Pearson correlation (:func:`gwcorr`)."""
        return _pearson(self.y, self.p)

    def gwspear(self) -> float:
        """Spearman correlation (:func:`gwspear`)."""
        return _pearson(_rank(self.y), _rank(self.p))

    def match1(self) -> float:
        """Share of the top-1% observed in the top-1% imputed (:func:`match1`)."""
        return _weighted_mean(self.imp1, self.obs1)

    def catch1obs(self) -> float:
        """Share of the top-1% observed in the top-5% imputed (:func:`catch1obs`)."""
        return _weighted_mean(self.imp5, self.obs1)

    def catch1imp(self) -> float:
        """Share of the top-1% imputed in the top-5% observed (:func:`catch1imp`)."""
        return _weighted_mean(self.obs5, self.imp1)

    def aucobs1(self) -> float:
        """ROC AUC of the top-1% observed, scored by the imputed signal (:func:`aucobs1`)."""
        return _auc(self.p, self.obs1)

    def aucimp1(self) -> float:
        """ROC AUC of the top-1% imputed, scored by the observed signal (:func:`aucimp1`)."""
        return _auc(self.y, self.imp1)

    def catchpeakobs(self) -> float:
        """ROC AUC of the observed peaks, scored by the imputed signal (:func:`catchpeakobs`)."""
        return _auc(self.p, self.peaks.astype(np.float64))

    def recall(self) -> float:
        """Share of the observed peaks imputed as peaks (:func:`peak_recall`)."""
        return _share(self.peaks & self.called, self.peaks)

    def precision(self) -> float:
        """Share of the imputed peaks that are observed peaks (:func:`peak_precision`)."""
        return _share(self.peaks & self.called, self.called)


# ---------------------------------------------------------------------------- measures
