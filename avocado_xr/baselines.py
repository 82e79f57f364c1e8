"""Simple imputation baselines an imputation model must beat, lazy like the data.

- ``average``: at each position, the mean of the same assay over the other cell types in
  which it was observed (the ENCODE Imputation Challenge's strong baseline).
- ``mean``: a constant, the mean of the same assay's observed values in the other cell types
  (the best constant one can know without the hidden track).
"""

from __future__ import annotations

import xarray as xr

from .variables import DIM_ASSAY, DIM_CELLTYPE, DIM_POSITION, OBSERVED, SIGNAL, check_names

__all__ = ["average_baseline", "mean_baseline"]


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
