"""Measures of imputation quality of one track, each defined once.

Every measure is a method of :class:`Track`, which holds the observed track ``y`` and the
imputed track ``p`` (1-D, same positions) restricted to an optional boolean ``mask`` of the
positions to score (e.g. one chromosome, or everything outside artifact regions). The
functions of the same names (:func:`mse`, :func:`gwcorr`...) call those methods on two arrays,
and :func:`avocado_xr.evaluate` calls them for every track of a
compendium. All are computed on the scale the arrays are given in: for a compendium that is
arcsinh(-log10 p), the scale on which Avocado, PREDICTD and ChromImpute were evaluated. (The
ENCODE Imputation Challenge scored untransformed -log10 p values, so its leaderboard numbers
are not comparable with these.)

Sources and names (the ``metric`` coordinate of ``evaluate()`` uses the lower-case names in the
first column; the other names are accepted as aliases):

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
pilot data, so ``evaluate()`` uses the thresholded observed signal unless ``peaks`` is
passed; CatchPeakObs then measures the recovery of those thresholded bins.
"""

from __future__ import annotations

from .track import DIM_METRIC, HIGHER_IS_BETTER, METRICS, PEAK_THRESHOLD, Track, top_fraction

__all__ = [
    "DIM_METRIC",
    "HIGHER_IS_BETTER",
    "METRICS",
    "PEAK_THRESHOLD",
    "Track",
    "aucimp1",
    "aucobs1",
    "catch1imp",
    "catch1obs",
    "catchpeakobs",
    "gwcorr",
    "gwspear",
    "match1",
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
    return Track(y, p, mask).mse()


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
    return Track(y, p, mask, promoter=promoters).mseprom()


def msegene(y, p, gene_bodies, mask=None) -> float:
    """MSE over gene-body positions (True in ``gene_bodies``); NaN if there are none.

    Examples
    --------
    >>> msegene([0.0, 1.0, 2.0], [1.0, 1.0, 0.0], [False, True, True])
    2.0
    """
    return Track(y, p, mask, gene_body=gene_bodies).msegene()


def mseenh(y, p, enhancers, mask=None) -> float:
    """MSE over enhancer positions (True in ``enhancers``, from a user BED); NaN if none.

    Examples
    --------
    >>> mseenh([0.0, 1.0, 2.0], [1.0, 1.0, 0.0], [True, False, False])
    1.0
    """
    return Track(y, p, mask, enhancer=enhancers).mseenh()


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
    return Track(y, p, mask, variance=variance).msevar()


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
    return Track(y, p, mask, fraction=fraction).mse1obs()


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
    return Track(y, p, mask, fraction=fraction).mse1imp()


def gwcorr(y, p, mask=None) -> float:
    """Pearson correlation over all positions (GWcorr; the challenge's ``gwcorr``).

    NaN when either track is constant. Computed on the values as given (arcsinh scale for a
    compendium; PREDICTD also reported GWcorr after ``sinh`` back-transformation).

    Examples
    --------
    >>> gwcorr([1.0, 2.0, 3.0], [2.0, 4.0, 7.0])
    0.99339...
    """
    return Track(y, p, mask).gwcorr()


def gwspear(y, p, mask=None) -> float:
    """Spearman correlation over all positions: Pearson correlation of the ranks, tied
    values given their average rank (the challenge's ``gwspear``, ``scipy.stats.spearmanr``).

    Examples
    --------
    >>> gwspear([1.0, 2.0, 3.0, 4.0], [1.0, 3.0, 2.0, 4.0])
    0.8
    """
    return Track(y, p, mask).gwspear()


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
    return Track(y, p, mask, fraction=fraction).match1()


def catch1obs(y, p, mask=None, *, fraction: float = 0.01, catch_fraction: float = 0.05) -> float:
    """Share of the top-1% observed positions found in the top-5% imputed (Catch1obs).

    ``sum(w_obs1 * w_imp5) / sum(w_obs1)``.

    Examples
    --------
    >>> y = [9.0] + [0.0] * 99  # 100 positions: top 1% = 1, top 5% = 5
    >>> p = [5.0, 9.0, 8.0, 7.0, 6.0] + [0.0] * 95
    >>> catch1obs(y, p)
    1.0
    """
    return Track(y, p, mask, fraction=fraction, catch_fraction=catch_fraction).catch1obs()


def catch1imp(y, p, mask=None, *, fraction: float = 0.01, catch_fraction: float = 0.05) -> float:
    """Share of the top-1% imputed positions found in the top-5% observed (Catch1imp).

    ``sum(w_imp1 * w_obs5) / sum(w_imp1)``.

    Examples
    --------
    >>> y = [9.0, 8.0, 7.0, 6.0, 5.0] + [0.0] * 95
    >>> p = [0.0] * 99 + [1.0]  # the top imputed position is not among the top 5% observed
    >>> catch1imp(y, p)
    0.0
    """
    return Track(y, p, mask, fraction=fraction, catch_fraction=catch_fraction).catch1imp()


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
    return Track(y, p, mask, fraction=fraction).aucobs1()


def aucimp1(y, p, mask=None, *, fraction: float = 0.01) -> float:
    """ROC AUC of recovering the top-1% imputed positions from the observed signal (AucImp1).

    Examples
    --------
    >>> y = [0.5, 1.0] + [0.0] * 98
    >>> p = [9.0] + [0.0] * 99
    >>> round(aucimp1(y, p), 4)
    0.9899
    """
    return Track(y, p, mask, fraction=fraction).aucimp1()


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
    return Track(y, p, mask, peaks=peaks, threshold=threshold).catchpeakobs()


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
    return Track(y, p, mask, peaks=peaks, threshold=threshold).recall()


def peak_precision(y, p, mask=None, *, peaks=None, threshold: float = PEAK_THRESHOLD) -> float:
    """Share of imputed peak positions (``p >= threshold``) that are observed peaks.

    NaN when nothing is imputed as a peak. See :func:`peak_recall` for the peaks.

    Examples
    --------
    >>> peak_precision([0.0, 2.0, 0.0, 2.0], [2.0, 2.0, 0.0, 0.0])  # 1 of 2 calls is right
    0.5
    """
    return Track(y, p, mask, peaks=peaks, threshold=threshold).precision()
