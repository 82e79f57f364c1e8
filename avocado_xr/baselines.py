"""Simple imputation baselines an imputation model must beat, lazy like the data.

- ``average``: at each position, the mean of the same assay over the other cell types in
  which it was observed (the ENCODE Imputation Challenge's strong baseline).
- ``mean``: a constant, the mean of the same assay's observed values in the other cell types
  (the best constant one can know without the hidden track).
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from .variables import (
    DIM_ASSAY,
    DIM_CELLTYPE,
    DIM_POSITION,
    IMPUTED,
    OBSERVED,
    SIGNAL,
    check_names,
    validate,
)

__all__ = ["average_baseline", "impute_average", "impute_mean", "mean_baseline"]


def _others(ds: xr.Dataset, celltype: str, assay: str) -> xr.DataArray:
    check_names(celltype, ds.indexes[DIM_CELLTYPE], DIM_CELLTYPE)
    check_names(assay, ds.indexes[DIM_ASSAY], DIM_ASSAY)
    observed = ds[OBSERVED].sel({DIM_ASSAY: assay}).load()
    donors = [
        str(c)
        for c, o in zip(ds.indexes[DIM_CELLTYPE], observed.values, strict=True)
        if o and str(c) != celltype
    ]
    if not donors:
        raise ValueError(f"No other cell type has assay {assay!r} observed; no baseline exists.")
    return ds[SIGNAL].sel({DIM_ASSAY: assay, DIM_CELLTYPE: donors})


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
    return _others(ds, celltype, assay).mean(DIM_CELLTYPE)


def mean_baseline(ds: xr.Dataset, celltype: str, assay: str) -> xr.DataArray:
    """Constant prediction: mean of ``assay``'s values in the other observed cell types (lazy)."""
    others = _others(ds, celltype, assay)
    return xr.full_like(others.isel({DIM_CELLTYPE: 0}, drop=True), 1.0) * others.mean(
        (DIM_CELLTYPE, DIM_POSITION)
    )


def _track_parts(ds: xr.Dataset):
    """Observed mask, masked signal and per-assay totals over observed cell types (lazy)."""
    validate(ds)
    observed = ds[OBSERVED].astype(bool)
    signal = ds[SIGNAL].where(observed).fillna(0)
    return observed, signal


def _as_imputation(imputed: xr.DataArray, ds: xr.Dataset, method: str) -> xr.Dataset:
    from . import __version__

    imputed = imputed.transpose(DIM_CELLTYPE, DIM_ASSAY, DIM_POSITION).astype(np.float32)
    return (
        imputed.rename(IMPUTED)
        .to_dataset()
        .assign_attrs(source=f"avocado_xr-{__version__}", method=method)
    )


def impute_average(ds: xr.Dataset, **_) -> xr.Dataset:
    """The ``average`` method for every track: mean of the same assay over the *other*
    observed cell types at each position (0 where no other cell type has the assay).

    Lazy for Dask-backed input. Extra keyword arguments (``seed``...) are ignored, so the
    function has the signature :func:`avocado_xr.cross_validate` calls methods with.

    Examples
    --------
    >>> import avocado_xr as ax
    >>> ds = ax.datasets.roadmap_pilot_sample()
    >>> imp = impute_average(ds.avocado.mask([("E065", "H3K4me3")]))
    >>> expected = average_baseline(ds.avocado.mask([("E065", "H3K4me3")]), "E065", "H3K4me3")
    >>> bool(abs(imp.imputed.sel(celltype="E065", assay="H3K4me3") - expected).max() < 1e-6)
    True
    """
    observed, signal = _track_parts(ds)
    total = signal.sum(DIM_CELLTYPE)
    count = observed.sum(DIM_CELLTYPE)
    others = (total - signal) / (count - observed)
    return _as_imputation(others.where(count - observed > 0, 0.0), ds, "average")


def impute_mean(ds: xr.Dataset, **_) -> xr.Dataset:
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
    observed, signal = _track_parts(ds)
    track_mean = signal.mean(DIM_POSITION)
    total = track_mean.sum(DIM_CELLTYPE)
    count = observed.sum(DIM_CELLTYPE)
    others = ((total - track_mean) / (count - observed)).where(count - observed > 0, 0.0)
    return _as_imputation(
        others * xr.ones_like(signal.isel({DIM_CELLTYPE: 0}, drop=True)), ds, "mean"
    )
