"""Simple imputation baselines an imputation model must beat, lazy like the data.

- ``average``: at each position, the mean of the same assay over the other cell types in
  which it was observed (the ENCODE Imputation Challenge's strong baseline), computed by the
  package's one kernel, :func:`avocado_xr.average.average_block`.
- ``mean``: a constant, the same kernel applied to the track means: the mean over the other
  observed cell types of their mean signal in the assay (the best constant one can know
  without the hidden track).
- ``average-w9``, ``average-w33``: the average smoothed by a moving mean over 9 or 33
  positions (225 or 825 bp at 25 bp) within each run of contiguous bins
  (:func:`avocado_xr.average.window_mean`). The other cell types' tracks are noisy estimates
  of the imputed one, and a peak spans many bins, so a little smoothing lowers the squared
  error (multi-scale signal features, as ChromImpute's and Avocado's own genome factors).

Two more borrow from the track's own cell type, as ChromImpute does (Ernst & Kellis, *Nature
Biotechnology* 33, 2015: the same mark in the cell types most like the target one, likeness
judged on the marks the target has). Each is a least-squares fit to *other* tracks, solved
from Gram matrices of one lazy pass over the compendium (:func:`track_moments`):

- ``mixture``: the other cell types' tracks of the assay (the *donors*), mixed by an intercept
  and non-negative weights learned on the cell type's other assays: the fit of the cell
  type's other observed assays on the same assays of the donors (those assays all donors
  have). It is the average with weights that say which cell types this one resembles; the
  average where no such assay exists.
- ``cross-assay``: the cell type's own other observed assays, combined by a linear map learned
  in the other cell types: the least-squares fit of the assay on those assays over the donors
  that have them all. A constant (the donors' mean) where the cell type has no other assay or
  no donor has them all.

Neither reads the track it imputes, so, like the average, their imputation of an observed
track is out of sample.
"""

from __future__ import annotations

import functools

import dask
import dask.array as da
import numpy as np
import xarray as xr

from ..average import average_block, window_mean
from ..coords import dataset_layout
from ..exceptions import ConfigError, InvalidSignalError
from ..imputation import imputation_result
from ..variables import (
    DIM_ASSAY,
    DIM_CELLTYPE,
    DIM_POSITION,
    IMPUTED,
    OBSERVED,
    SIGNAL,
    check_names,
    validate,
)
from .least_squares import nnls

__all__ = [
    "BaselineModel",
    "average_baseline",
    "impute_average",
    "impute_cross_assay",
    "impute_mean",
    "impute_mixture",
    "mean_baseline",
    "track_moments",
]

_DIMS = (DIM_CELLTYPE, DIM_ASSAY, DIM_POSITION)


def _averages(values, observed: np.ndarray, rows, cols):
    """``average_block`` over a NumPy or Dask (celltype, assay, position) array, blockwise."""
    if isinstance(values, da.Array):
        values = values.rechunk({0: -1, 1: -1})
        return da.map_blocks(
            average_block,
            values,
            observed=observed,
            celltypes=rows,
            assays=cols,
            chunks=((len(rows),), (len(cols),), values.chunks[2]),
            dtype=np.float32,
            meta=np.empty((0, 0, 0), dtype=np.float32),
        )
    return average_block(values, observed, rows, cols)


def _tracks(ds: xr.Dataset, celltypes=None, assays=None):
    validate(ds)
    celltypes = check_names(celltypes, ds.get_index(DIM_CELLTYPE), DIM_CELLTYPE)
    assays = check_names(assays, ds.get_index(DIM_ASSAY), DIM_ASSAY)
    rows = [ds.get_index(DIM_CELLTYPE).get_loc(c) for c in celltypes]
    cols = [ds.get_index(DIM_ASSAY).get_loc(a) for a in assays]
    observed = np.asarray(ds[OBSERVED].transpose(DIM_CELLTYPE, DIM_ASSAY).values, dtype=bool)
    return celltypes, assays, rows, cols, observed


def _attrs(method: str) -> dict:
    from .. import __version__

    return {"source": f"avocado_xr-{__version__}", "method": method}


def impute_average(
    ds: xr.Dataset,
    *,
    celltypes=None,
    assays=None,
    merge: bool = False,
    window: int = 1,
    **_,
) -> xr.Dataset:
    """The ``average`` method for every track: mean of the same assay over the *other*
    observed cell types at each position (0 where no other cell type has the assay), with
    ``window`` > 1 (odd) its moving mean over that many positions within each run of
    contiguous bins (:func:`~avocado_xr.average.window_mean`; methods ``average-w9`` and
    ``average-w33``).

    Lazy for Dask-backed input (one task per position block, overlapping its neighbours by
    half a window). Extra keyword arguments (``seed``...) are ignored. Positions outside
    ``ds`` are not read: within half a window of the ends of a slice of the genome, the
    smoothed average of the slice differs from the slice of the genome's.

    Examples
    --------
    >>> import avocado_xr as ax
    >>> ds = ax.datasets.roadmap_pilot_sample()
    >>> train = ds.avocado.mask([("E065", "H3K4me3")])
    >>> imp = impute_average(train)
    >>> donors = train.signal.sel(assay="H3K4me3").drop_sel(celltype="E065").mean("celltype")
    >>> bool(abs(imp.imputed.sel(celltype="E065", assay="H3K4me3") - donors).max() < 1e-5)
    True
    >>> raw = imp.imputed.sel(celltype="E065", assay="H3K4me3")
    >>> smooth = impute_average(train, window=9).imputed.sel(celltype="E065", assay="H3K4me3")
    >>> bool(abs(raw[4:13].mean() - smooth[8]) < 1e-5)  # positions 4-12: one run of bins
    True
    """
    if isinstance(window, bool) or not isinstance(window, int) or window < 1 or window % 2 == 0:
        raise ConfigError(f"window must be an odd number of positions >= 1, got {window!r}.")
    celltypes, assays, rows, cols, observed = _tracks(ds, celltypes, assays)
    values = ds[SIGNAL].transpose(*_DIMS).data
    data = _averages(values, observed, rows, cols)
    if window > 1:
        data = _window_means(data, dataset_layout(ds), window)
    method = "average" if window == 1 else f"average-w{window}"
    return imputation_result(data, celltypes, assays, ds, _attrs(method), merge=merge)


def _window_means(data, layout, width: int):
    """:func:`window_mean` of a NumPy or Dask (celltype, assay, position) array over the
    segments of ``layout`` (a :class:`~avocado_xr.genome.GenomeLayout`); for Dask, blockwise
    with overlapping blocks."""
    if not isinstance(data, da.Array):
        return window_mean(data, layout.segment_at(np.arange(data.shape[-1])), width)
    segment = da.arange(data.shape[-1], chunks=data.chunks[-1]).map_blocks(layout.segment_at)
    return da.map_overlap(
        lambda block, labels: window_mean(block, labels[0, 0], width),
        data,
        segment[None, None, :],
        depth=[{2: width // 2}, {2: width // 2}],
        boundary="none",
        dtype=np.float32,
        meta=np.empty((0, 0, 0), dtype=np.float32),
    )


def impute_mean(
    ds: xr.Dataset, *, celltypes=None, assays=None, merge: bool = False, **_
) -> xr.Dataset:
    """The ``mean`` method for every track: a constant, the mean over the *other* observed
    cell types of their mean signal in the same assay (lazy).

    Examples
    --------
    >>> import avocado_xr as ax
    >>> ds = ax.datasets.roadmap_pilot_sample()
    >>> import numpy as np
    >>> track = impute_mean(ds).imputed.sel(celltype="E003", assay="H3K4me3").values
    >>> bool(np.ptp(track) == 0)
    True
    """
    celltypes, assays, rows, cols, observed = _tracks(ds, celltypes, assays)
    signal = ds[SIGNAL].transpose(*_DIMS)
    means = signal.mean(DIM_POSITION).data[..., None]
    constant = _averages(means, observed, rows, cols)[..., 0]
    ones = xr.ones_like(signal.isel({DIM_CELLTYPE: 0, DIM_ASSAY: 0}, drop=True), np.float32)
    per_track = xr.DataArray(constant, dims=(DIM_CELLTYPE, DIM_ASSAY))
    data = (per_track * ones).transpose(*_DIMS).data
    return imputation_result(data, celltypes, assays, ds, _attrs("mean"), merge=merge)


def track_moments(values, observed: np.ndarray) -> dict:
    """Sums and cross-products over positions of the observed tracks, for the regression
    baselines (lazy for a Dask array: one pass, Gram matrices of a few kB per block).

    Parameters
    ----------
    values : numpy.ndarray or dask.array.Array
        (celltype, assay, position) signal; unobserved tracks are ignored.
    observed : numpy.ndarray
        (celltype, assay) bool.

    Returns
    -------
    dict
        ``n`` (positions), ``sums`` (celltype, assay), ``by_assay`` (assay, celltype,
        celltype): products of two cell types' tracks of one assay, and ``by_celltype``
        (celltype, assay, assay): products of two assays' tracks of one cell type; float64,
        0 for unobserved tracks; Dask arrays for a Dask input.

    Examples
    --------
    >>> values = np.arange(8.0).reshape(2, 2, 2)
    >>> m = track_moments(values, np.array([[True, True], [True, False]]))
    >>> m["sums"].tolist(), m["by_assay"][0].tolist()
    ([[1.0, 5.0], [9.0, 0.0]], [[1.0, 5.0], [5.0, 41.0]])
    """
    xp = da if isinstance(values, da.Array) else np
    x = xp.where(np.asarray(observed, dtype=bool)[..., None], values, 0).astype(np.float64)
    return {
        "n": values.shape[-1],
        "sums": x.sum(-1),
        "by_assay": xp.einsum("cap,dap->acd", x, x),
        "by_celltype": xp.einsum("cap,cbp->cab", x, x),
    }


def _gram(n, sums, products) -> np.ndarray:
    """``X'X`` of ``[1, columns]`` from the columns' sums and cross-products."""
    return np.block([[np.array([[float(n)]]), sums[None, :]], [sums[:, None], products]])


def _with_donors(observed: np.ndarray, rows, cols):
    """``(i, j, c, a, donors)`` of each wanted track whose assay another cell type observes
    (its donors); the others keep weights 0, an imputation of 0 like the average's."""
    for i, c in enumerate(rows):
        for j, a in enumerate(cols):
            donors = [d for d in range(observed.shape[0]) if d != c and observed[d, a]]
            if donors:
                yield i, j, c, a, donors


def mixture_weights(moments: dict, observed, rows, cols, ridge: float = 0.0) -> np.ndarray:
    """Intercept and donor weights of the ``mixture`` baseline: (rows, cols, 1 + celltypes).

    For track (c, a) the donors are the other cell types with ``a`` observed; the weights are
    the non-negative least-squares fit of c's tracks of the other assays that c and every
    donor have on the donors' tracks of them; equal weights (the average) where there is no
    such assay; all 0 without donors. ``ridge`` > 0 shrinks the fit towards equal weights, by
    ``ridge`` times a donor track's mean sum of squares.
    """
    n, sums, by_assay = moments["n"], moments["sums"], moments["by_assay"]
    observed = np.asarray(observed, dtype=bool)
    out = np.zeros((len(rows), len(cols), observed.shape[0] + 1))
    for i, j, c, a, donors in _with_donors(observed, rows, cols):
        shared = [
            b
            for b in range(observed.shape[1])
            if b != a and observed[c, b] and observed[donors, b].all()
        ]
        if not shared:
            out[i, j, 1 + np.array(donors)] = 1.0 / len(donors)
            continue
        gram = sum(_gram(n, sums[donors, b], by_assay[b][np.ix_(donors, donors)]) for b in shared)
        rhs = sum(np.r_[sums[c, b], by_assay[b][donors, c]] for b in shared)
        prior = np.r_[0.0, np.full(len(donors), 1.0 / len(donors))]
        penalty = ridge * np.mean(np.diag(gram)[1:]) * np.diag(np.r_[0.0, np.ones(len(donors))])
        weights = nnls(gram + penalty, rhs + penalty @ prior)
        out[i, j, 0], out[i, j, 1 + np.array(donors)] = weights[0], weights[1:]
    return out


def cross_assay_weights(moments: dict, observed, rows, cols) -> np.ndarray:
    """Intercept and assay weights of the ``cross-assay`` baseline: (rows, cols, 1 + assays).

    For track (c, a) the features are c's other observed assays and the donors the other cell
    types with ``a`` and all those assays observed; the weights are the least-squares fit of
    the donors' ``a`` tracks on their feature tracks; the donors of ``a``'s mean (a constant)
    where there are no features or no such donor; 0 without donors of ``a``.
    """
    n, sums, by_celltype = moments["n"], moments["sums"], moments["by_celltype"]
    observed = np.asarray(observed, dtype=bool)
    out = np.zeros((len(rows), len(cols), observed.shape[1] + 1))
    for i, j, c, a, others in _with_donors(observed, rows, cols):
        features = [b for b in range(observed.shape[1]) if b != a and observed[c, b]]
        donors = [d for d in others if observed[d, features].all()]
        if not features or not donors:
            out[i, j, 0] = sums[others, a].sum() / (n * len(others))
            continue
        block = np.ix_(features, features)
        gram = sum(_gram(n, sums[d, features], by_celltype[d][block]) for d in donors)
        rhs = sum(np.r_[sums[d, a], by_celltype[d][features, a]] for d in donors)
        weights = np.linalg.lstsq(gram, rhs, rcond=None)[0]
        out[i, j, 0], out[i, j, 1 + np.array(features)] = weights[0], weights[1:]
    return out


def _regression(solve, axis: int, ds, celltypes, assays, method, merge):
    """Impute with the weights of ``solve``: over the donor cell types' tracks of the assay
    (``axis=0``) or over the cell type's own assays (``axis=1``); lazy for Dask."""
    celltypes, assays, rows, cols, observed = _tracks(ds, celltypes, assays)
    values = ds[SIGNAL].transpose(*_DIMS).data
    moments = track_moments(values, observed)
    xp = da if isinstance(values, da.Array) else np
    if xp is da:
        weights = da.from_delayed(
            dask.delayed(solve)(moments, observed, rows, cols),
            (len(rows), len(cols), observed.shape[axis] + 1),
            dtype=np.float64,
        )
    else:
        weights = solve(moments, observed, rows, cols)
    weights = weights.astype(np.float32)
    x = xp.where(observed[..., None], values, 0).astype(np.float32)
    if axis == 0:  # donors' tracks of the imputed assay
        mixed = xp.einsum("ijd,djp->ijp", weights[..., 1:], x[:, cols])
    else:  # the imputed cell type's tracks
        mixed = xp.einsum("ijb,ibp->ijp", weights[..., 1:], x[rows])
    data = weights[..., :1] + mixed
    return imputation_result(data, celltypes, assays, ds, _attrs(method), merge=merge)


def impute_mixture(
    ds: xr.Dataset,
    *,
    celltypes=None,
    assays=None,
    merge: bool = False,
    ridge: float = 0.0,
    **_,
) -> xr.Dataset:
    """The ``mixture`` method for every track: the other cell types' tracks of the assay,
    mixed with weights learned on the cell type's other assays (see the module
    documentation and :func:`mixture_weights`, which ``ridge`` is passed to). Lazy for
    Dask-backed input.

    Examples
    --------
    >>> import avocado_xr as ax
    >>> ds = ax.datasets.roadmap_pilot_sample()
    >>> train = ds.avocado.mask([("E065", "H3K4me3")])
    >>> imp = impute_mixture(train, celltypes="E065", assays="H3K4me3").imputed
    >>> truth = ds.signal.sel(celltype="E065", assay="H3K4me3")
    >>> avg = impute_average(train, celltypes="E065", assays="H3K4me3").imputed
    >>> bool(((imp - truth) ** 2).mean() < ((avg - truth) ** 2).mean())
    True
    """
    solve = functools.partial(mixture_weights, ridge=ridge)
    return _regression(solve, 0, ds, celltypes, assays, "mixture", merge)


def impute_cross_assay(
    ds: xr.Dataset, *, celltypes=None, assays=None, merge: bool = False, **_
) -> xr.Dataset:
    """The ``cross-assay`` method for every track: the cell type's other assays, combined by
    a linear map learned in the other cell types (see the module documentation and
    :func:`cross_assay_weights`). Lazy for Dask-backed input.

    Examples
    --------
    >>> import avocado_xr as ax
    >>> ds = ax.datasets.roadmap_pilot_sample()
    >>> imp = impute_cross_assay(ds.avocado.mask([("E116", "H3K27me3")]), celltypes="E116")
    >>> imp.imputed.sizes["assay"], imp.attrs["method"]
    (5, 'cross-assay')
    """
    return _regression(cross_assay_weights, 1, ds, celltypes, assays, "cross-assay", merge)


_BASELINES = {
    "average": impute_average,
    "average-w9": functools.partial(impute_average, window=9),
    "average-w33": functools.partial(impute_average, window=33),
    "mean": impute_mean,
    "mixture": impute_mixture,
    "cross-assay": impute_cross_assay,
}


class BaselineModel:
    """A baseline with the interface of a fitted model; nothing is learned, so
    :meth:`impute` computes it from the compendium it is given.

    Examples
    --------
    >>> import avocado_xr as ax
    >>> ds = ax.datasets.roadmap_pilot_sample()
    >>> BaselineModel("average").impute(ds, celltypes="E003", merge=False).imputed.shape
    (1, 5, 64248)
    """

    def __init__(self, method: str):
        if method not in _BASELINES:
            raise ConfigError(f"Unknown baseline {method!r}; choose from {sorted(_BASELINES)}.")
        self.method = method

    def __repr__(self) -> str:
        return f"<BaselineModel: {self.method}>"

    def impute(
        self, ds: xr.Dataset, *, celltypes=None, assays=None, merge=True, position_chunk=None
    ) -> xr.Dataset:
        """The baseline for tracks of ``ds`` (``position_chunk`` is ignored: the result
        follows ``ds``'s chunks)."""
        return _BASELINES[self.method](ds, celltypes=celltypes, assays=assays, merge=merge)


def _one(method, ds: xr.Dataset, celltype: str, assay: str) -> xr.DataArray:
    celltypes, assays, rows, cols, observed = _tracks(ds, [celltype], [assay])
    donors = np.delete(observed[:, cols[0]], rows[0])
    if not donors.any():
        raise InvalidSignalError(
            f"No cell type other than {celltype!r} has assay {assay!r} observed, so there is "
            "no baseline for this track."
        )
    return method(ds, celltypes=celltypes, assays=assays, merge=False)[IMPUTED].isel(
        {DIM_CELLTYPE: 0, DIM_ASSAY: 0}, drop=True
    )


def average_baseline(ds: xr.Dataset, celltype: str, assay: str) -> xr.DataArray:
    """Mean of ``assay`` over the other observed cell types, per position (lazy).

    Examples
    --------
    >>> import avocado_xr as ax
    >>> ds = ax.datasets.roadmap_pilot_sample()
    >>> avg = average_baseline(ds, "E065", "H3K4me3")
    >>> avg.dims, bool(avg.notnull().all())
    (('position',), True)
    """
    return _one(impute_average, ds, celltype, assay)


def mean_baseline(ds: xr.Dataset, celltype: str, assay: str) -> xr.DataArray:
    """Constant prediction: mean of ``assay``'s values in the other observed cell types (lazy)."""
    return _one(impute_mean, ds, celltype, assay)
