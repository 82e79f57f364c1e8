"""The average of the other cell types: one kernel for training, imputation and baselines.

At each position, the *average of the other cell types* for a track (cell type ``c``, assay
``a``) is the mean of assay ``a`` over the observed cell types other than ``c``; a track that
is not among the observed ones averages all of them; 0 where no other cell type has the assay.
It is the ENCODE Imputation Challenge's strong baseline (``method="average"``) and an extra
input of the ``average="input"``/``"residual"`` Avocado models. The sampler (training), the
held-out validation, :func:`avocado_xr.impute` and the baselines all compute it with the two
functions below, so the models see at imputation exactly what they saw in training.
:func:`window_mean` smooths it along the genome (the ``average-w9`` and ``average-w33``
baselines).

Examples
--------
>>> import numpy as np
>>> signal = np.array([[[1.0, 2.0]], [[3.0, 6.0]], [[np.nan, np.nan]]])  # 3 cell types, 1 assay
>>> observed = np.array([[True], [True], [False]])
>>> average_block(signal, observed)[:, 0]
array([[3., 6.],
       [1., 2.],
       [2., 4.]], dtype=float32)
"""

from __future__ import annotations

import numpy as np

__all__ = ["assay_totals", "average_block", "average_of_others", "window_mean"]


def assay_totals(
    values: np.ndarray, assay_of_row: np.ndarray, n_assays: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Per-assay sums over observed tracks and the number of tracks of each assay.

    Parameters
    ----------
    values : numpy.ndarray
        (n_tracks, n_positions) values of observed tracks.
    assay_of_row : numpy.ndarray
        Assay index of each track (row).
    n_assays : int, optional
        Rows of the result. Default: the largest assay index + 1.

    Returns
    -------
    sums : numpy.ndarray
        (n_assays, n_positions) float64 sums.
    counts : numpy.ndarray
        Tracks per assay (float64).
    """
    assay_of_row = np.asarray(assay_of_row, dtype=np.int64)
    n = int(assay_of_row.max(initial=-1)) + 1 if n_assays is None else int(n_assays)
    onehot = np.zeros((n, len(assay_of_row)), dtype=np.float64)
    onehot[assay_of_row, np.arange(len(assay_of_row))] = 1
    return onehot @ np.asarray(values, dtype=np.float64), onehot.sum(1)


def average_of_others(sums, counts, own=None) -> np.ndarray:
    """Mean of an assay over the other cell types: ``(sum - own) / (count - 1)``, or
    ``sum / count`` for a track that is not among them (``own=None``); 0 where no other cell
    type has the assay.

    Examples
    --------
    >>> average_of_others(np.array([6.0, 6.0]), np.array([3, 1]), np.array([2.0, 6.0]))
    array([2., 0.], dtype=float32)
    >>> average_of_others(np.array([6.0]), np.array([3]))
    array([2.], dtype=float32)
    """
    sums = np.asarray(sums, dtype=np.float64)
    counts = np.asarray(counts, dtype=np.float64)
    if own is not None:
        sums = sums - own
        counts = counts - 1
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(counts > 0, sums / np.maximum(counts, 1), 0.0)
    return out.astype(np.float32)


def average_block(signal, observed, celltypes=None, assays=None) -> np.ndarray:
    """The average of the other cell types for tracks of a (celltype, assay, position) block.

    Parameters
    ----------
    signal : numpy.ndarray
        (n_celltypes, n_assays, n_positions) values; those of unobserved tracks are ignored.
    observed : numpy.ndarray
        (n_celltypes, n_assays) bool.
    celltypes, assays : sequence of int, optional
        Rows and columns of the tracks wanted. Default: all.

    Returns
    -------
    numpy.ndarray
        float32 (len(celltypes), len(assays), n_positions).
    """
    signal = np.asarray(signal)
    observed = np.asarray(observed, dtype=bool)
    celltypes = range(signal.shape[0]) if celltypes is None else celltypes
    assays = range(signal.shape[1]) if assays is None else assays
    rows = np.argwhere(observed)
    sums, counts = assay_totals(signal[rows[:, 0], rows[:, 1]], rows[:, 1], signal.shape[1])
    out = np.empty((len(celltypes), len(assays), signal.shape[-1]), dtype=np.float32)
    for i, c in enumerate(celltypes):
        for j, a in enumerate(assays):
            own = signal[c, a] if observed[c, a] else None
            out[i, j] = average_of_others(sums[a], counts[a], own)
    return out


def window_mean(values, segment, width: int) -> np.ndarray:
    """Moving mean along the last axis over ``width`` positions centred on each one, within
    its segment (a window is cut short at a segment's ends: it never mixes unrelated loci).

    Parameters
    ----------
    values : numpy.ndarray
        (..., n_positions) values.
    segment : numpy.ndarray
        (n_positions,) label of each position's segment (a run of contiguous bins); equal
        labels must be consecutive.
    width : int
        Odd number of positions in a full window; 1 returns the values as float32.

    Returns
    -------
    numpy.ndarray
        float32, the shape of ``values``.

    Examples
    --------
    >>> window_mean(np.array([1.0, 2.0, 6.0, 10.0, 20.0]), np.array([0, 0, 0, 1, 1]), 3)
    array([ 1.5,  3. ,  4. , 15. , 15. ], dtype=float32)
    """
    values = np.asarray(values, dtype=np.float64)
    n, half = values.shape[-1], width // 2
    cuts = np.r_[0, np.flatnonzero(np.diff(segment)) + 1, n]
    first = np.repeat(cuts[:-1], np.diff(cuts))  # each position's segment: [first, last]
    last = np.repeat(cuts[1:] - 1, np.diff(cuts))
    at = np.arange(n)
    lo, hi = np.maximum(at - half, first), np.minimum(at + half, last)
    total = np.concatenate([np.zeros((*values.shape[:-1], 1)), np.cumsum(values, -1)], -1)
    return ((total[..., hi + 1] - total[..., lo]) / (hi - lo + 1)).astype(np.float32)
