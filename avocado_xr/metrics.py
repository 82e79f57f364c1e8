"""Measures of imputation quality, per track, and :func:`evaluate` over whole compendia.

Every measure is a small function of two 1-D arrays, the observed track ``y`` and the imputed
track ``p`` (same positions), with an optional boolean ``mask`` of the positions to score
(e.g. one chromosome, or everything outside artifact regions). All are computed on the scale
the arrays are given in: for a compendium that is arcsinh(-log10 p), the scale on which
Avocado, PREDICTD and ChromImpute were evaluated. (The ENCODE Imputation Challenge scored
untransformed -log10 p values, so its leaderboard numbers are not comparable with these.)

Sources and names (the ``metric`` coordinate of :func:`evaluate` uses the lower-case names in
the first column; the other names are accepted as aliases):

==============  ===============================================  =============================
name            measure                                          from
==============  ===============================================  =============================
mse             mean squared error over all positions            Avocado MSEglobal; challenge
mse1obs         MSE on the top 1% positions of observed signal   Avocado/PREDICTD; challenge
mse1imp         MSE on the top 1% positions of imputed signal    Avocado/PREDICTD; challenge
mseprom         MSE on promoter positions                        Avocado MSEProm; challenge
msegene         MSE on gene-body positions                       Avocado MSEGene; challenge
mseenh          MSE on enhancer positions                        Avocado MSEEnh; challenge
msevar          MSE weighted by the across-cell-type variance    challenge
gwcorr          Pearson correlation over all positions           ChromImpute/PREDICTD; chall.
gwspear         Spearman correlation over all positions          challenge
match1          share of top-1% observed in top-1% imputed       ChromImpute Match1
catch1obs       share of top-1% observed in top-5% imputed       ChromImpute Catch1obs
catch1imp       share of top-1% imputed in top-5% observed       ChromImpute Catch1imp
aucobs1         ROC AUC of top-1% observed, scored by imputed    ChromImpute AucObs1
aucimp1         ROC AUC of top-1% imputed, scored by observed    ChromImpute AucImp1
catchpeakobs    ROC AUC of observed peaks, scored by imputed     ChromImpute CatchPeakObs
recall          share of observed peaks imputed as peaks         Avocado (Fig. 2)
precision       share of imputed peaks that are observed peaks   Avocado (Fig. 2)
==============  ===============================================  =============================

References: Schreiber et al., Genome Biology 2020 (Avocado), "Results" and "Methods";
Durham et al., Nat. Commun. 2018 (PREDICTD) and its ``assess_imputation`` script; Ernst &
Kellis, Nat. Biotechnol. 2015 (ChromImpute); the ENCODE Imputation Challenge scorer,
github.com/ENCODE-DCC/imputation_challenge ``score.py`` (functions ``mse``, ``gwcorr``,
``gwspear``, ``mseprom``, ``msegene``, ``mseenh``, ``msevar``, ``mse1obs``, ``mse1imp``) and
``build_var_npy.py``.

Top-fraction sets and ties
--------------------------
The "top 1%" of a track of ``n`` positions has ``k = max(1, floor(n * fraction))`` positions
(``fraction = 0.01``; the top 5% uses ``catch_fraction = 0.05``), as the challenge scorer's
``int(n * 0.01)``. Positions tied with the k-th largest value share the remaining slots: if
``a`` values are strictly larger than the k-th largest and ``m`` values equal it, each of those
``m`` gets membership ``(k - a) / m`` and every larger value membership 1 (see
:func:`top_fraction`). Without ties this is exactly the top-k set. With ties it is the
expectation over breaking them uniformly at random (for the overlap measures, with the two
tracks' ties broken independently), so results do not depend on position order, and a constant
imputation scores at chance level (Match1 = 0.01, AucObs1 = AucImp1 = 0.5) instead of the
perfect Match1 = 1 it would get from the challenge scorer's tie-inclusive rule
(``y >= k-th largest``) or an order-dependent one from PREDICTD's ``argsort``.

Peaks
-----
Recall and precision binarise the imputed signal at ``threshold`` (default
``PEAK_THRESHOLD = arcsinh(2) = 1.4436``, i.e. -log10 p >= 2, p <= 0.01: the paper's "1.44,
corresponding to a signal p value of 0.01" and its Methods' "threshold on the -log10 p value
of 2" are the same cut on the two scales) and compare with the observed peaks: called peaks
given as a boolean mask (``peaks``), or, when none are given, the observed signal binarised
at the same threshold (the paper's "Roadmap" series). No peak calls are shipped with the
pilot data, so :func:`evaluate` uses the thresholded observed signal unless ``peaks`` is
passed; CatchPeakObs then measures the recovery of those thresholded bins.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from functools import cached_property

import dask
import dask.array as da
import numpy as np
import pandas as pd
import xarray as xr

from . import __version__
from .exceptions import AvocadoXrError, DimensionError
from .genome import GenomeLayout
from .variables import (
    CHROM,
    DIM_ASSAY,
    DIM_CELLTYPE,
    DIM_POSITION,
    IMPUTED,
    OBSERVED,
    SIGNAL,
    START,
    check_names,
    validate,
)

__all__ = [
    "DIM_METRIC",
    "HIGHER_IS_BETTER",
    "METRICS",
    "MetricError",
    "PEAK_THRESHOLD",
    "aucimp1",
    "aucobs1",
    "catch1imp",
    "catch1obs",
    "catchpeakobs",
    "evaluate",
    "gwcorr",
    "gwspear",
    "match1",
    "metric_table",
    "mse",
    "mse1imp",
    "mse1obs",
    "mseenh",
    "msegene",
    "mseprom",
    "msevar",
    "peak_precision",
    "peak_recall",
    "top_fraction",
]

DIM_METRIC = "metric"
#: arcsinh(-log10 p) at p = 0.01: the Avocado paper's peak threshold ("1.44")
PEAK_THRESHOLD = float(np.arcsinh(2.0))

#: every measure :func:`evaluate` computes, in its output order
METRICS = (
    "mse",
    "mse1obs",
    "mse1imp",
    "mseprom",
    "msegene",
    "mseenh",
    "msevar",
    "gwcorr",
    "gwspear",
    "match1",
    "catch1obs",
    "catch1imp",
    "aucobs1",
    "aucimp1",
    "catchpeakobs",
    "recall",
    "precision",
)
#: whether a larger value of the measure is better (MSEs: no)
HIGHER_IS_BETTER = {name: not name.startswith("mse") for name in METRICS}
_ALIASES = {
    "mseglobal": "mse",
    "peak_recall": "recall",
    "peak_precision": "precision",
    "gwspearman": "gwspear",
}
#: annotation needed by each region measure (a key of ``evaluate(annotations=...)``)
_NEEDS = {"mseprom": "promoter", "msegene": "gene_body", "mseenh": "enhancer"}


class MetricError(AvocadoXrError, ValueError):
    """Inputs to a measure are inconsistent (lengths, NaN, unknown measure names)."""


# ---------------------------------------------------------------------------- helpers


def _prepare(y, p, mask=None, *extra) -> tuple[np.ndarray, ...]:
    y = np.asarray(y, dtype=np.float64)
    p = np.asarray(p, dtype=np.float64)
    if y.ndim != 1 or p.shape != y.shape:
        raise MetricError(
            f"observed and imputed must be 1-D arrays of equal length, got shapes {y.shape} "
            f"and {p.shape}."
        )
    others = []
    for name, value in extra:
        value = np.asarray(value)
        if value.shape != y.shape:
            raise MetricError(f"{name} has shape {value.shape}, expected {y.shape}.")
        others.append(value)
    if mask is not None:
        mask = np.asarray(mask)
        if mask.shape != y.shape or mask.dtype != bool:
            raise MetricError(
                f"mask must be a boolean array of shape {y.shape}, got {mask.dtype} {mask.shape}."
            )
        y, p, others = y[mask], p[mask], [o[mask] for o in others]
    for name, values in (("observed", y), ("imputed", p)):
        if not np.isfinite(values).all():
            bad = int(np.count_nonzero(~np.isfinite(values)))
            raise MetricError(
                f"The {name} track has {bad} non-finite value(s); score only positions "
                "where both tracks are defined (pass mask=...)."
            )
    if y.size == 0:
        raise MetricError("No position to score (empty arrays or an all-False mask).")
    return (y, p, *others)


def _n_top(n: int, fraction: float) -> int:
    if not 0 < fraction <= 1:
        raise MetricError(f"fraction must be in (0, 1], got {fraction}.")
    return max(1, math.floor(n * fraction + 1e-9))


def _top_weights(x: np.ndarray, fraction: float) -> np.ndarray:
    n = len(x)
    k = _n_top(n, fraction)
    if k >= n:
        return np.ones(n)
    kth = np.partition(x, n - k)[n - k]
    above = x > kth
    tied = x == kth
    weights = above.astype(np.float64)
    weights[tied] = (k - np.count_nonzero(above)) / np.count_nonzero(tied)
    return weights


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


def _binary_peaks(y: np.ndarray, peaks, threshold: float) -> np.ndarray:
    if peaks is None:
        return y >= threshold
    return np.asarray(peaks, dtype=bool)


# ---------------------------------------------------------------------------- measures


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
    return _top_weights(x, fraction)


def mse(y, p, mask=None) -> float:
    """Mean squared error: ``mean((y - p) ** 2)`` over the positions (Avocado's MSEglobal,
    the challenge's ``mse``).

    Examples
    --------
    >>> mse([0.0, 1.0, 2.0, 3.0], [0.0, 1.0, 2.0, 1.0])
    1.0
    >>> mse([0.0, 1.0, 2.0, 3.0], [0.0, 1.0, 2.0, 1.0], mask=[True, True, True, False])
    0.0
    """
    y, p = _prepare(y, p, mask)
    return float(np.mean((y - p) ** 2))


def _region_mse(y, p, region, mask, what: str) -> float:
    region = np.asarray(region)
    if region.dtype != bool:
        raise MetricError(f"The {what} mask must be boolean, got {region.dtype}.")
    y, p, region = _prepare(y, p, mask, (what, region))
    if not region.any():
        return math.nan
    return float(np.mean((y[region] - p[region]) ** 2))


def mseprom(y, p, promoters, mask=None) -> float:
    """MSE over promoter positions (True in ``promoters``); NaN if there are none.

    Promoters are 2 kb upstream of each TSS, strand-aware
    (:func:`avocado_xr.annotations.promoters`). Each position counts once, even where
    promoters overlap (the challenge scorer sums over genes, counting shared bins again).

    Examples
    --------
    >>> mseprom([0.0, 1.0, 2.0], [1.0, 1.0, 0.0], [True, False, True])
    2.5
    """
    return _region_mse(y, p, promoters, mask, "promoter")


def msegene(y, p, gene_bodies, mask=None) -> float:
    """MSE over gene-body positions (True in ``gene_bodies``); NaN if there are none.

    Examples
    --------
    >>> msegene([0.0, 1.0, 2.0], [1.0, 1.0, 0.0], [False, True, True])
    2.0
    """
    return _region_mse(y, p, gene_bodies, mask, "gene body")


def mseenh(y, p, enhancers, mask=None) -> float:
    """MSE over enhancer positions (True in ``enhancers``, from a user BED); NaN if none.

    Examples
    --------
    >>> mseenh([0.0, 1.0, 2.0], [1.0, 1.0, 0.0], [True, False, False])
    1.0
    """
    return _region_mse(y, p, enhancers, mask, "enhancer")


def msevar(y, p, variance, mask=None) -> float:
    """MSE weighted by the variance of the assay across cell types at each position.

    ``sum(v * (y - p) ** 2) / sum(v)`` where ``v`` is, per position, the population variance
    (``ddof=0``) of the observed signal of the same assay over the cell types in which it was
    observed, the evaluated one included (the challenge's ``msevar`` with the variance file of
    ``build_var_npy.py``: ``numpy.std(y_all, axis=0) ** 2`` over the truth tracks of that
    assay). NaN when ``v`` is zero everywhere (e.g. only one cell type has the assay); the
    challenge scorer returns 0.0 when it has no variance file.

    Examples
    --------
    >>> msevar([0.0, 1.0, 2.0], [1.0, 1.0, 0.0], variance=[3.0, 0.0, 1.0])  # (3*1 + 1*4) / 4
    1.75
    """
    y, p, variance = _prepare(y, p, mask, ("variance", variance))
    variance = variance.astype(np.float64)
    return _weighted_mean((y - p) ** 2, variance)


def mse1obs(y, p, mask=None, *, fraction: float = 0.01) -> float:
    """MSE over the top ``fraction`` (1%) of positions by observed signal.

    ``sum(w * (y - p) ** 2) / sum(w)`` with ``w = top_fraction(y, fraction)`` (ties at the
    boundary shared, see the module notes).

    Examples
    --------
    >>> y = [0, 0, 0, 0, 0, 0, 0, 0, 0, 9.0]
    >>> p = [0, 0, 0, 0, 0, 0, 0, 0, 5.0, 6.0]
    >>> mse1obs(y, p)  # top 1% of 10 positions = the largest one: (9 - 6)^2
    9.0
    """
    y, p = _prepare(y, p, mask)
    return _weighted_mean((y - p) ** 2, _top_weights(y, fraction))


def mse1imp(y, p, mask=None, *, fraction: float = 0.01) -> float:
    """MSE over the top ``fraction`` (1%) of positions by imputed signal.

    ``sum(w * (y - p) ** 2) / sum(w)`` with ``w = top_fraction(p, fraction)``.

    Examples
    --------
    >>> y = [0, 0, 0, 0, 0, 0, 0, 0, 0, 9.0]
    >>> p = [0, 0, 0, 0, 0, 0, 0, 0, 7.0, 6.0]
    >>> mse1imp(y, p)  # the largest imputed value is at position 8: (0 - 7)^2
    49.0
    """
    y, p = _prepare(y, p, mask)
    return _weighted_mean((y - p) ** 2, _top_weights(p, fraction))


def gwcorr(y, p, mask=None) -> float:
    """Pearson correlation over all positions (GWcorr; the challenge's ``gwcorr``).

    NaN when either track is constant. Computed on the values as given (arcsinh scale for a
    compendium; PREDICTD also reported GWcorr after ``sinh`` back-transformation).

    Examples
    --------
    >>> gwcorr([1.0, 2.0, 3.0], [2.0, 4.0, 7.0])
    0.99339...
    """
    y, p = _prepare(y, p, mask)
    return _pearson(y, p)


def gwspear(y, p, mask=None) -> float:
    """Spearman correlation over all positions: Pearson correlation of the ranks, tied
    values given their average rank (the challenge's ``gwspear``, ``scipy.stats.spearmanr``).

    Examples
    --------
    >>> gwspear([1.0, 2.0, 3.0, 4.0], [1.0, 3.0, 2.0, 4.0])
    0.8
    """
    y, p = _prepare(y, p, mask)
    return _pearson(_rank(y), _rank(p))


def match1(y, p, mask=None, *, fraction: float = 0.01) -> float:
    """Share of the top-1% observed positions that are also top-1% imputed (Match1).

    ``sum(w_obs * w_imp) / sum(w_obs)`` with ``w_obs = top_fraction(y)``,
    ``w_imp = top_fraction(p)``; a fraction in [0, 1] (PREDICTD's ``match1``; the challenge
    scorer reported the count instead).

    Examples
    --------
    >>> y = [9.0, 8.0] + [0.0] * 198  # 200 positions: top 1% = 2 positions
    >>> p = [9.0, 0.0, 8.0] + [0.0] * 197
    >>> match1(y, p)
    0.5
    """
    y, p = _prepare(y, p, mask)
    return _weighted_mean(_top_weights(p, fraction), _top_weights(y, fraction))


def catch1obs(y, p, mask=None, *, fraction: float = 0.01, catch_fraction: float = 0.05):
    """Share of the top-1% observed positions found in the top-5% imputed (Catch1obs).

    ``sum(w_obs1 * w_imp5) / sum(w_obs1)``.

    Examples
    --------
    >>> y = [9.0] + [0.0] * 99  # 100 positions: top 1% = 1, top 5% = 5
    >>> p = [5.0, 9.0, 8.0, 7.0, 6.0] + [0.0] * 95
    >>> catch1obs(y, p)
    1.0
    """
    y, p = _prepare(y, p, mask)
    return _weighted_mean(_top_weights(p, catch_fraction), _top_weights(y, fraction))


def catch1imp(y, p, mask=None, *, fraction: float = 0.01, catch_fraction: float = 0.05):
    """Share of the top-1% imputed positions found in the top-5% observed (Catch1imp).

    ``sum(w_imp1 * w_obs5) / sum(w_imp1)``.

    Examples
    --------
    >>> y = [9.0, 8.0, 7.0, 6.0, 5.0] + [0.0] * 95
    >>> p = [0.0] * 99 + [1.0]  # the top imputed position is not among the top 5% observed
    >>> catch1imp(y, p)
    0.0
    """
    y, p = _prepare(y, p, mask)
    return _weighted_mean(_top_weights(y, catch_fraction), _top_weights(p, fraction))


def aucobs1(y, p, mask=None, *, fraction: float = 0.01) -> float:
    """ROC AUC of recovering the top-1% observed positions from the imputed signal (AucObs1).

    Positives are the top-1% observed positions (fractional for tied ones, see
    :func:`top_fraction`), the score is ``p``; tied scores count one half. Equals
    ``sklearn.metrics.roc_auc_score(y >= kth, p)`` when there are no ties at the boundary.

    Examples
    --------
    >>> y = [9.0] + [0.0] * 99
    >>> p = [0.5, 1.0] + [0.0] * 98  # the top observed position ranks 2nd of 100
    >>> round(aucobs1(y, p), 4)  # beaten by 1 of 99 negatives
    0.9899
    """
    y, p = _prepare(y, p, mask)
    return _auc(p, _top_weights(y, fraction))


def aucimp1(y, p, mask=None, *, fraction: float = 0.01) -> float:
    """ROC AUC of recovering the top-1% imputed positions from the observed signal (AucImp1).

    Examples
    --------
    >>> y = [0.5, 1.0] + [0.0] * 98
    >>> p = [9.0] + [0.0] * 99
    >>> round(aucimp1(y, p), 4)
    0.9899
    """
    y, p = _prepare(y, p, mask)
    return _auc(y, _top_weights(p, fraction))


def catchpeakobs(y, p, mask=None, *, peaks=None, threshold: float = PEAK_THRESHOLD) -> float:
    """ROC AUC of recovering the observed peak positions from the imputed signal.

    ChromImpute's and PREDICTD's CatchPeakObs, with the peaks given as a boolean array over
    the positions (bins overlapping called peaks, e.g.
    ``avocado_xr.annotations.intervals_mask(narrowpeak_bed, ds)``). Without peak calls
    (``peaks=None``) the observed signal thresholded at ``threshold`` (p <= 0.01) stands in for
    them. NaN when there are no peaks or only peaks.

    Examples
    --------
    >>> y = [0.0, 0.0, 3.0, 2.0]
    >>> catchpeakobs(y, [0.1, 0.5, 0.9, 0.3])  # peaks (y >= 1.44) at 2, 3; 3 of 4 pairs won
    0.75
    >>> catchpeakobs(y, [0.1, 0.5, 0.9, 0.3], peaks=[False, True, True, False])
    1.0
    """
    extra = [("peaks", peaks)] if peaks is not None else []
    y, p, *rest = _prepare(y, p, mask, *extra)
    truth = _binary_peaks(y, rest[0] if rest else None, threshold)
    return _auc(p, truth.astype(np.float64))


def _recall_precision(y, p, mask, peaks, threshold) -> tuple[float, float]:
    extra = [("peaks", peaks)] if peaks is not None else []
    y, p, *rest = _prepare(y, p, mask, *extra)
    truth = _binary_peaks(y, rest[0] if rest else None, threshold)
    called = p >= threshold
    hit = np.count_nonzero(truth & called)
    n_truth, n_called = np.count_nonzero(truth), np.count_nonzero(called)
    recall = hit / n_truth if n_truth else math.nan
    precision = hit / n_called if n_called else math.nan
    return float(recall), float(precision)


def peak_recall(y, p, mask=None, *, peaks=None, threshold: float = PEAK_THRESHOLD) -> float:
    """Share of observed peak positions where the imputed signal is >= ``threshold``.

    The observed peaks are ``peaks`` (boolean array, e.g. MACS2 calls as in the paper), or
    ``y >= threshold`` when none are given. ``threshold`` defaults to arcsinh(2) = 1.4436
    (p = 0.01). NaN when there are no observed peaks (sklearn's ``recall_score`` would
    return 0 with a warning).

    Examples
    --------
    >>> peak_recall([0.0, 2.0, 3.0, 2.0], [0.0, 0.5, 2.0, 1.5])  # 2 of 3 peaks recovered
    0.666...
    """
    return _recall_precision(y, p, mask, peaks, threshold)[0]


def peak_precision(y, p, mask=None, *, peaks=None, threshold: float = PEAK_THRESHOLD) -> float:
    """Share of imputed peak positions (``p >= threshold``) that are observed peaks.

    NaN when nothing is imputed as a peak. See :func:`peak_recall` for the peaks.

    Examples
    --------
    >>> peak_precision([0.0, 2.0, 0.0, 2.0], [2.0, 2.0, 0.0, 0.0])  # 1 of 2 calls is right
    0.5
    """
    return _recall_precision(y, p, mask, peaks, threshold)[1]


# ---------------------------------------------------------------------------- one track


class _Track:
    """The arrays of one track and the top-fraction weights its measures share."""

    def __init__(self, y, p, variance, annotations, peaks, fraction, catch_fraction, threshold):
        self.y, self.p, self.variance = y, p, variance
        self.annotations, self.peaks_given = annotations, peaks
        self.fraction, self.catch_fraction, self.threshold = fraction, catch_fraction, threshold

    @cached_property
    def error(self):
        return (self.y - self.p) ** 2

    @cached_property
    def obs1(self):
        return _top_weights(self.y, self.fraction)

    @cached_property
    def imp1(self):
        return _top_weights(self.p, self.fraction)

    @cached_property
    def obs5(self):
        return _top_weights(self.y, self.catch_fraction)

    @cached_property
    def imp5(self):
        return _top_weights(self.p, self.catch_fraction)

    @cached_property
    def peaks(self):
        return _binary_peaks(self.y, self.peaks_given, self.threshold)

    @cached_property
    def recall_precision(self):
        return _recall_precision(self.y, self.p, None, self.peaks, self.threshold)

    def region(self, key: str) -> float:
        region = self.annotations.get(key)
        if region is None or not region.any():
            return math.nan
        return float(self.error[region].mean())


_KERNELS: dict[str, Callable[[_Track], float]] = {
    "mse": lambda t: float(t.error.mean()),
    "mse1obs": lambda t: _weighted_mean(t.error, t.obs1),
    "mse1imp": lambda t: _weighted_mean(t.error, t.imp1),
    "mseprom": lambda t: t.region("promoter"),
    "msegene": lambda t: t.region("gene_body"),
    "mseenh": lambda t: t.region("enhancer"),
    "msevar": lambda t: math.nan if t.variance is None else _weighted_mean(t.error, t.variance),
    "gwcorr": lambda t: _pearson(t.y, t.p),
    "gwspear": lambda t: _pearson(_rank(t.y), _rank(t.p)),
    "match1": lambda t: _weighted_mean(t.imp1, t.obs1),
    "catch1obs": lambda t: _weighted_mean(t.imp5, t.obs1),
    "catch1imp": lambda t: _weighted_mean(t.obs5, t.imp1),
    "aucobs1": lambda t: _auc(t.p, t.obs1),
    "aucimp1": lambda t: _auc(t.y, t.imp1),
    "catchpeakobs": lambda t: _auc(t.p, t.peaks.astype(np.float64)),
    "recall": lambda t: t.recall_precision[0],
    "precision": lambda t: t.recall_precision[1],
}


def _score_track(y, p, variance, annotations, peaks, keep, names, params) -> np.ndarray:
    """All measures ``names`` of one track (NaN for all if a value is missing)."""
    out = np.full(len(names), np.nan)
    y = np.asarray(y, dtype=np.float64)
    p = np.asarray(p, dtype=np.float64)
    variance = None if variance is None else np.asarray(variance, dtype=np.float64)
    peaks = None if peaks is None else np.asarray(peaks, dtype=bool)
    if keep is not None:
        y, p = y[keep], p[keep]
        variance = None if variance is None else variance[keep]
        peaks = None if peaks is None else peaks[keep]
        annotations = {k: v[keep] for k, v in annotations.items()}
    if y.size == 0 or not (np.isfinite(y).all() and np.isfinite(p).all()):
        return out
    track = _Track(y, p, variance, annotations, peaks, *params)
    for i, name in enumerate(names):
        out[i] = _KERNELS[name](track)
    return out


# ---------------------------------------------------------------------------- compendia


def _resolve_metrics(metrics: Iterable[str] | str | None) -> list[str]:
    if metrics is None:
        return list(METRICS)
    if isinstance(metrics, str):
        metrics = [metrics]
    out = []
    for name in metrics:
        key = str(name).lower()
        key = _ALIASES.get(key, key)
        if key not in METRICS:
            raise MetricError(
                f"Unknown metric {name!r}; the known metrics are {list(METRICS)} "
                f"(aliases: {sorted(_ALIASES)})."
            )
        if key not in out:
            out.append(key)
    if not out:
        raise MetricError("metrics is empty; pass None for all of them.")
    return out


def _shared(value):
    """A Dask array as one Delayed over its *unoptimised* graph (other values unchanged).

    Handing Dask arrays to ``dask.delayed`` optimises each one separately, which fuses the
    shared upstream blocks (e.g. a whole imputation block) into every track's graph, so each
    of n tracks recomputed them: n times the work. Unoptimised, all tracks share those keys.
    """
    if not _is_dask(value):
        return value
    return value.rechunk(-1).to_delayed(optimize_graph=False).ravel()[0]


def _is_dask(array) -> bool:
    return isinstance(getattr(array, "data", array), da.Array)


def _position_index(observed: xr.Dataset, imputed: xr.Dataset) -> np.ndarray | None:
    """Index of imputed's positions in observed's (None when they are the same)."""
    obs_chrom, obs_start = np.asarray(observed[CHROM].values), np.asarray(observed[START].values)
    for name in (CHROM, START):
        if name not in imputed.coords and name not in imputed.variables:
            raise DimensionError(
                f"The imputation has no {name!r} coordinate; it needs the chrom/start of the "
                "compendium it imputes."
            )
    imp_chrom, imp_start = np.asarray(imputed[CHROM].values), np.asarray(imputed[START].values)
    if (
        len(imp_start) == len(obs_start)
        and np.array_equal(imp_start, obs_start)
        and np.array_equal(imp_chrom, obs_chrom)
    ):
        return None
    layout = GenomeLayout.from_coords(
        obs_chrom, obs_start, int(observed.attrs.get("resolution", 25))
    )
    return layout.locate(imp_chrom, imp_start)


def _position_mask(name: str, value, observed, imputed, index) -> np.ndarray:
    """A boolean mask over imputed's positions from a mask over either object's."""
    if _is_dask(value):
        raise MetricError(
            f"The {name} mask is Dask-backed; load it first (masks are small: {name}.load())."
        )
    array = np.asarray(getattr(value, "values", value))
    if array.dtype != bool or array.ndim != 1:
        raise MetricError(
            f"The {name} mask must be a 1-D boolean array along position, got {array.dtype} "
            f"with shape {array.shape}."
        )
    n_imp, n_obs = imputed.sizes[DIM_POSITION], observed.sizes[DIM_POSITION]
    if len(array) == n_imp:
        return array
    if index is not None and len(array) == n_obs:
        return array[index]
    raise MetricError(
        f"The {name} mask has {len(array)} positions but the imputation has {n_imp}; build "
        "it over the same positions (e.g. avocado_xr.annotations.promoters(bed, imputed))."
    )


def _annotation_masks(annotations, observed, imputed, index) -> dict[str, np.ndarray]:
    if annotations is None:
        return {}
    if isinstance(annotations, str):
        if annotations != "pilot":
            raise MetricError(
                f"annotations={annotations!r}; pass 'pilot', a Dataset or a mapping of masks."
            )
        from .annotations import pilot_annotations

        annotations = pilot_annotations(imputed)
    if isinstance(annotations, xr.Dataset):
        annotations = {str(k): annotations[k] for k in annotations.data_vars}
    if not isinstance(annotations, Mapping):
        raise MetricError(
            "annotations must be 'pilot', an xarray.Dataset or a mapping of boolean masks "
            f"with keys among {sorted(set(_NEEDS.values()))}, got {type(annotations).__name__}."
        )
    known = set(_NEEDS.values())
    unknown = sorted(set(annotations) - known)
    if unknown:
        raise MetricError(
            f"Unknown annotation(s) {unknown}; the measures use {sorted(known)} "
            "(mseprom, msegene, mseenh)."
        )
    return {
        key: _position_mask(key, value, observed, imputed, index)
        for key, value in annotations.items()
    }


def _peaks_for(peaks, celltype: str, assay: str, observed, imputed, index):
    """Peak mask of one track (array, Dask array or None)."""
    if peaks is None:
        return None
    if isinstance(peaks, Mapping):
        value = peaks.get((celltype, assay))
        if value is None:
            return None
        if isinstance(value, xr.DataArray | np.ndarray | list | tuple):
            return _position_mask(
                f"peaks of ({celltype}, {assay})", value, observed, imputed, index
            )
        from .annotations import intervals_mask

        return intervals_mask(value, imputed).values
    if isinstance(peaks, xr.DataArray):
        sel = {
            dim: name
            for dim, name in ((DIM_CELLTYPE, celltype), (DIM_ASSAY, assay))
            if dim in peaks.dims
        }
        value = peaks.sel(sel)
        if value.dims != (DIM_POSITION,):
            raise MetricError(
                f"peaks must have dims among (celltype, assay, position), got {peaks.dims}."
            )
        n_imp = imputed.sizes[DIM_POSITION]
        if value.sizes[DIM_POSITION] != n_imp:
            if index is None or value.sizes[DIM_POSITION] != observed.sizes[DIM_POSITION]:
                raise MetricError(
                    f"peaks has {value.sizes[DIM_POSITION]} positions, the imputation {n_imp}."
                )
            value = value.isel({DIM_POSITION: index})
        return value.data
    raise MetricError(
        "peaks must be None, a boolean DataArray (celltype, assay, position) or a mapping "
        f"{{(celltype, assay): mask or BED}}, got {type(peaks).__name__}."
    )


def evaluate(
    observed: xr.Dataset,
    imputed: xr.Dataset,
    *,
    annotations=None,
    metrics: Sequence[str] | str | None = None,
    peaks=None,
    mask=None,
    threshold: float = PEAK_THRESHOLD,
    fraction: float = 0.01,
    catch_fraction: float = 0.05,
) -> xr.Dataset:
    """Score every imputed track against the observed one: ``score`` (celltype, assay, metric).

    Each track is scored by one task (its observed and imputed values are loaded together
    and every requested measure computed from them); nothing is computed when the inputs are
    Dask-backed: the result is then Dask-backed too, and ``.compute()`` (or
    :func:`metric_table`) runs the tasks. With NumPy-backed inputs the scores are computed at
    once. A task holds one whole track in memory, about 130 bytes per position at its peak
    with all measures (float64 copies, top-fraction weights, sort orders): ~150 MB for the
    1.1M pilot positions, ~15 GB for a 115M-position genome, so bound the parallelism on
    genome-wide data with ``dask.config.set(num_workers=...)``.

    Parameters
    ----------
    observed : xarray.Dataset
        The compendium with the truth: ``signal`` and ``observed`` (e.g. the full compendium
        before masking).
    imputed : xarray.Dataset
        ``imputed`` (celltype, assay, position) with ``chrom``/``start``; its positions must be
        the observed ones or a subset (e.g. a region). Its celltype and assay coordinates
        define the tracks scored.
    annotations : xarray.Dataset, mapping or "pilot", optional
        Boolean position masks named ``promoter`` (for ``mseprom``), ``gene_body``
        (``msegene``) and ``enhancer`` (``mseenh``), over the imputed or observed positions.
        ``"pilot"`` uses :func:`avocado_xr.annotations.pilot_annotations` (hg19 promoters and
        gene bodies; no enhancers are shipped). A measure whose annotation is not given is
        NaN (by default mseprom, msegene and mseenh are NaN).
    metrics : list of str, optional
        Measures to compute (names of :data:`METRICS` or aliases such as ``"MSEglobal"``,
        ``"AucObs1"``). Default is all of them.
    peaks : DataArray or mapping, optional
        Observed peak calls for ``catchpeakobs``, ``recall`` and ``precision``: a boolean
        DataArray with dims among (celltype, assay, position), or a mapping
        ``{(celltype, assay): boolean mask or BED path/DataFrame}``. Tracks without peaks use
        the observed signal thresholded at ``threshold`` instead (recorded in the attrs).
    mask : array-like of bool, optional
        Positions to score (e.g. one chromosome, or outside artifact regions); all positions
        by default. Top-1% sets and correlations are then taken within these positions.
    threshold : float
        Peak threshold on the signal scale. Default is arcsinh(2) = 1.4436 (p = 0.01).
    fraction, catch_fraction : float
        The "top 1%" and "top 5%" fractions. Defaults are 0.01 and 0.05.

    Returns
    -------
    xarray.Dataset
        ``score`` (celltype, assay, metric), float64, NaN where the track is not observed in
        ``observed``, has non-finite values in either track, or lacks what a measure needs;
        coordinate ``higher_is_better`` (metric). Attributes record the settings.

    Raises
    ------
    MetricError
        Unknown metric names, annotations or masks of the wrong length.
    UnknownCelltypeError, UnknownAssayError
        A track of the imputation is not in the compendium.

    Examples
    --------
    >>> import avocado_xr as ax
    >>> ds = ax.datasets.roadmap_pilot_sample()
    >>> from avocado_xr.baselines import average_baseline
    >>> avg = average_baseline(ds, "E065", "H3K4me3")
    >>> imp = avg.expand_dims(celltype=["E065"], assay=["H3K4me3"]).to_dataset(name="imputed")
    >>> scores = evaluate(ds, imp, annotations="pilot", metrics=["mse", "mseprom", "gwcorr"])
    >>> scores.score.sel(celltype="E065", assay="H3K4me3").round(3).values.tolist()
    [0.241, 1.144, 0.779]
    """
    validate(observed)
    if IMPUTED not in imputed.data_vars:
        raise DimensionError(
            f"The imputation has no variable {IMPUTED!r}; evaluate() scores a Dataset with "
            f"{IMPUTED!r} (celltype, assay, position), e.g. model.impute(ds)."
        )
    imp = imputed[IMPUTED]
    dims = (DIM_CELLTYPE, DIM_ASSAY, DIM_POSITION)
    if set(imp.dims) != set(dims):
        raise DimensionError(f"Variable {IMPUTED!r} must have dims {dims}, got {imp.dims}.")
    imp = imp.transpose(*dims)
    names = _resolve_metrics(metrics)
    celltypes = check_names(
        list(imputed.indexes[DIM_CELLTYPE]), observed.indexes[DIM_CELLTYPE], DIM_CELLTYPE
    )
    assays = check_names(list(imputed.indexes[DIM_ASSAY]), observed.indexes[DIM_ASSAY], DIM_ASSAY)
    index = _position_index(observed, imputed)
    ann = _annotation_masks(annotations, observed, imputed, index)
    keep = None if mask is None else _position_mask("mask", mask, observed, imputed, index)
    params = (fraction, catch_fraction, threshold)
    for value in (fraction, catch_fraction):
        _n_top(1, value)  # fail early on a bad fraction

    observed_table = observed[OBSERVED].compute()  # small (celltype, assay) table
    all_flags = observed_table.values
    flags = observed_table.sel({DIM_CELLTYPE: celltypes, DIM_ASSAY: assays}).values
    signal = observed[SIGNAL]
    if index is not None:
        signal = signal.isel({DIM_POSITION: index})

    variances = {}
    if "msevar" in names:
        for j, assay in enumerate(assays):
            if not flags[:, j].any():
                continue
            column = list(observed.indexes[DIM_ASSAY]).index(assay)
            donors = [
                str(c)
                for c, o in zip(observed.indexes[DIM_CELLTYPE], all_flags[:, column], strict=True)
                if o
            ]
            variance = signal.sel({DIM_ASSAY: assay, DIM_CELLTYPE: donors}).astype(np.float64)
            variances[assay] = variance.var(DIM_CELLTYPE).data

    lazy = (
        _is_dask(signal) or _is_dask(imp) or (isinstance(peaks, xr.DataArray) and _is_dask(peaks))
    )
    rows = []
    for i, celltype in enumerate(celltypes):
        row = []
        for j, assay in enumerate(assays):
            if not flags[i, j]:
                row.append(da.full(len(names), np.nan) if lazy else np.full(len(names), np.nan))
                continue
            y = signal.sel({DIM_CELLTYPE: celltype, DIM_ASSAY: assay}).data
            p = imp.sel({DIM_CELLTYPE: celltype, DIM_ASSAY: assay}).data
            track_peaks = _peaks_for(peaks, celltype, assay, observed, imputed, index)
            args = (y, p, variances.get(assay), ann, track_peaks, keep, names, params)
            if lazy:
                args = tuple(_shared(arg) for arg in args)
                task = dask.delayed(_score_track, pure=False)(*args)
                row.append(da.from_delayed(task, shape=(len(names),), dtype=np.float64))
            else:
                row.append(_score_track(*args))
        rows.append(da.stack(row) if lazy else np.stack(row))
    data = da.stack(rows) if lazy else np.stack(rows)

    peaks_note = (
        "observed signal >= threshold (no peak calls given)"
        if peaks is None
        else "given peak calls (observed signal >= threshold for tracks without)"
    )
    out = xr.Dataset(
        {"score": ((DIM_CELLTYPE, DIM_ASSAY, DIM_METRIC), data)},
        coords={
            DIM_CELLTYPE: np.asarray(celltypes, dtype=object),
            DIM_ASSAY: np.asarray(assays, dtype=object),
            DIM_METRIC: np.asarray(names, dtype=object),
            "higher_is_better": (DIM_METRIC, [HIGHER_IS_BETTER[n] for n in names]),
        },
        attrs={
            "source": f"avocado_xr-{__version__}",
            "fraction": fraction,
            "catch_fraction": catch_fraction,
            "peak_threshold": threshold,
            "peaks": peaks_note,
            "annotations": ",".join(sorted(ann)) or "none",
            "positions": int(imputed.sizes[DIM_POSITION] if keep is None else keep.sum()),
        },
    )
    return out


def metric_table(scores: xr.Dataset | xr.DataArray) -> pd.DataFrame:
    """The scores as a table: one row per scored track (``celltype/assay``) and a ``mean`` row.

    Tracks whose scores are all NaN (not observed) are left out; the ``mean`` row averages each
    measure over the tracks where it is defined. Dask-backed scores are computed.

    Examples
    --------
    >>> import avocado_xr as ax
    >>> ds = ax.datasets.roadmap_pilot_sample()
    >>> from avocado_xr.baselines import average_baseline
    >>> avg = average_baseline(ds, "E065", "H3K4me3")
    >>> imp = avg.expand_dims(celltype=["E065"], assay=["H3K4me3"]).to_dataset(name="imputed")
    >>> metric_table(evaluate(ds, imp, metrics=["mse", "gwcorr"])).round(3)
    ... # doctest: +NORMALIZE_WHITESPACE
                    mse  gwcorr
    track
    E065/H3K4me3  0.241   0.779
    mean          0.241   0.779
    """
    score = scores["score"] if isinstance(scores, xr.Dataset) else scores
    extra = set(score.dims) - {DIM_CELLTYPE, DIM_ASSAY, DIM_METRIC}
    if extra:
        raise MetricError(
            f"metric_table takes scores with dims (celltype, assay, metric); select or "
            f"average over {sorted(extra)} first."
        )
    score = score.transpose(DIM_CELLTYPE, DIM_ASSAY, DIM_METRIC).compute()
    values = np.asarray(score.values)
    names = [str(m) for m in score[DIM_METRIC].values]
    rows, index = [], []
    for i, celltype in enumerate(score[DIM_CELLTYPE].values):
        for j, assay in enumerate(score[DIM_ASSAY].values):
            if np.isnan(values[i, j]).all():
                continue
            rows.append(values[i, j])
            index.append(f"{celltype}/{assay}")
    table = pd.DataFrame(rows, index=pd.Index(index, name="track"), columns=names, dtype=float)
    with np.errstate(all="ignore"):
        mean = table.mean(axis=0, skipna=True) if len(table) else pd.Series(np.nan, names)
    table.loc["mean"] = mean
    return table
