"""Quantile normalization of an imputed track (Bolstad et al., *Bioinformatics* 19, 2003):
the ensemble's ``~qn`` inputs (:mod:`.ensemble`).

- :func:`reference_quantiles`: each track's reference distribution, from the same assay's
  observed tracks in the *other* cell types (the average baseline's rule).
- :func:`quantile_map`: one track mapped onto its reference, ranks kept.
- :func:`map_tracks`: the map of every track of an imputation, lazily.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from ..variables import DIM_ASSAY, DIM_CELLTYPE, DIM_POSITION, OBSERVED, SIGNAL

__all__ = [
    "DIM_QUANTILE",
    "QUANTILES",
    "QUANTILE_SUFFIX",
    "map_tracks",
    "quantile_map",
    "reference_quantiles",
]

#: the dimension of the quantile tables, and its levels
DIM_QUANTILE = "quantile"
QUANTILES = np.linspace(0.0, 1.0, 1001)
#: the name of an input's quantile-normalized copy is the input's name plus this
QUANTILE_SUFFIX = "~qn"


def reference_quantiles(ds: xr.Dataset, rows: np.ndarray) -> np.ndarray:
    """The reference distribution of every (celltype, assay) of ``ds``: the mean, over the
    other cell types that observe the assay, of the :data:`QUANTILES` of their observed signal
    at positions ``rows``; NaN where no other cell type observes it.

    Only observed tracks of *other* cell types enter, so a track's reference never reads the
    track itself (the average baseline's rule).

    Returns
    -------
    numpy.ndarray
        (celltype, assay, quantile), float64.

    Examples
    --------
    >>> import avocado_xr as ax
    >>> ds = ax.testing.simulate_compendium(n_celltypes=3, n_assays=2, n_positions=500, seed=0)
    >>> ref = reference_quantiles(ds, np.arange(500))
    >>> ref.shape, bool(np.all(np.diff(ref, axis=-1) >= 0))
    ((3, 2, 1001), True)
    """
    observed = np.asarray(ds[OBSERVED].values)
    signal = ds[SIGNAL].isel({DIM_POSITION: np.sort(rows)})
    own = np.full(observed.shape + (len(QUANTILES),), np.nan)
    for c, a in np.argwhere(observed):
        values = np.asarray(signal.isel({DIM_CELLTYPE: c, DIM_ASSAY: a}).values, np.float64)
        own[c, a] = np.quantile(values, QUANTILES)
    out = np.full_like(own, np.nan)
    for c, a in np.ndindex(observed.shape):
        others = [k for k in range(observed.shape[0]) if k != c and observed[k, a]]
        if others:
            out[c, a] = own[others, a].mean(axis=0)
    return out


def quantile_map(values, source: np.ndarray, reference: np.ndarray):
    """Map ``values`` from the distribution with quantiles ``source`` onto ``reference``
    (piecewise linear; beyond the ends, the end values); the identity where ``reference`` is
    not finite.

    Non-decreasing, so ranks are kept (ties aside), while the level and spread become those
    of the reference: quantile normalization (Bolstad et al., *Bioinformatics* 19, 2003).

    Examples
    --------
    >>> quantile_map(np.array([0.0, 1.0, 2.0, 9.0]), np.array([0.0, 2.0]), np.array([0.0, 1.0]))
    array([0. , 0.5, 1. , 1. ])
    """
    if not np.all(np.isfinite(reference)) or not np.all(np.isfinite(source)):
        return values
    return np.interp(values, source, reference).astype(np.asarray(values).dtype, copy=False)


def map_tracks(part: xr.DataArray, source: xr.DataArray, reference: xr.DataArray):
    """:func:`quantile_map` of each (celltype, assay) of ``part`` with its own tables, lazily
    for a Dask-backed ``part``; the tables are (celltype, assay, quantile), aligned to it."""

    def block(values, src, ref):  # values (c, a, p); src, ref (c, a, 1, q)
        out = np.empty_like(values)
        for i, j in np.ndindex(values.shape[:2]):
            out[i, j] = quantile_map(values[i, j], src[i, j, 0], ref[i, j, 0])
        return out

    return xr.apply_ufunc(
        block,
        part,
        source,
        reference,
        input_core_dims=[[], [DIM_QUANTILE], [DIM_QUANTILE]],
        dask="parallelized",
        output_dtypes=[part.dtype],
    )
