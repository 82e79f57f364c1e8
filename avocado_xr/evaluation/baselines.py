"""Simple imputation baselines an imputation model must beat, lazy like the data.

- ``average``: at each position, the mean of the same assay over the other cell types in
  which it was observed (the ENCODE Imputation Challenge's strong baseline), computed by the
  package's one kernel, :func:`avocado_xr.average.average_block`.
- ``mean``: a constant, the same kernel applied to the track means: the mean over the other
  observed cell types of their mean signal in the assay (the best constant one can know
  without the hidden track).
"""

from __future__ import annotations

import dask.array as da
import numpy as np
import xarray as xr

from ..average import average_block
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

__all__ = [
    "BaselineModel",
    "average_baseline",
    "impute_average",
    "impute_mean",
    "mean_baseline",
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
    ds: xr.Dataset, *, celltypes=None, assays=None, merge: bool = False, **_
) -> xr.Dataset:
    """The ``average`` method for every track: mean of the same assay over the *other*
    observed cell types at each position (0 where no other cell type has the assay).

    Lazy for Dask-backed input (one task per position block). Extra keyword arguments
    (``seed``...) are ignored.

    Examples
    --------
    >>> import avocado_xr as ax
    >>> ds = ax.datasets.roadmap_pilot_sample()
    >>> train = ds.avocado.mask([("E065", "H3K4me3")])
    >>> imp = impute_average(train)
    >>> donors = train.signal.sel(assay="H3K4me3").drop_sel(celltype="E065").mean("celltype")
    >>> bool(abs(imp.imputed.sel(celltype="E065", assay="H3K4me3") - donors).max() < 1e-5)
    True
    """
    celltypes, assays, rows, cols, observed = _tracks(ds, celltypes, assays)
    values = ds[SIGNAL].transpose(*_DIMS).data
    data = _averages(values, observed, rows, cols)
    return imputation_result(data, celltypes, assays, ds, _attrs("average"), merge=merge)


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


_BASELINES = {"average": impute_average, "mean": impute_mean}


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
