"""The imputation output contract (DESIGN.md, section 2), shared by every imputation method.

:func:`imputation_result` labels a ``(celltype, assay, position)`` array of imputations with
the coordinates of the data it imputes and applies the ``merge=`` semantics: ``merge=True``
returns the input (restricted to the imputed cell types and assays) with ``imputed`` added,
warning if it replaces one; ``merge=False`` returns a Dataset of ``imputed`` alone. Both
carry the method's provenance attributes.
"""

from __future__ import annotations

import warnings

import numpy as np
import xarray as xr

from .coords import genome_coords, layout_of
from .exceptions import AvocadoXrWarning, UnknownAssayError, UnknownCelltypeError
from .variables import CHROM, DIM_ASSAY, DIM_CELLTYPE, DIM_POSITION, IMPUTED, START

__all__ = ["imputation_result"]


def imputation_result(
    data, celltypes, assays, ds: xr.Dataset, attrs: dict, *, merge: bool = True
) -> xr.Dataset:
    """Label imputations with ``ds``'s coordinates and merge them into ``ds`` (or not).

    Parameters
    ----------
    data : array_like
        (len(celltypes), len(assays), n_positions) imputations (NumPy or Dask).
    celltypes, assays : list of str
        Labels of the first two axes.
    ds : xarray.Dataset
        What was imputed: its ``chrom``/``start`` label the positions.
    attrs : dict
        Provenance attributes of the method (``source``, configuration...).
    merge : bool
        Return ``ds`` with ``imputed`` added (default) or ``imputed`` alone.

    Examples
    --------
    >>> import avocado_xr as ax
    >>> ds = ax.testing.simulate_compendium(n_positions=100, seed=0)
    >>> out = imputation_result(np.zeros((1, 1, 100)), ["C0"], ["A0"], ds, {"method": "zeros"})
    >>> out.imputed.dims, out.sizes["celltype"], out.attrs["method"]
    (('celltype', 'assay', 'position'), 1, 'zeros')
    """
    layout = layout_of(ds)
    positions = (
        genome_coords(layout)
        if layout is not None
        else {CHROM: ds[CHROM].variable, START: ds[START].variable}
    )
    imputed = xr.DataArray(
        data,
        dims=(DIM_CELLTYPE, DIM_ASSAY, DIM_POSITION),
        coords={
            DIM_CELLTYPE: np.asarray(celltypes, dtype=object),
            DIM_ASSAY: np.asarray(assays, dtype=object),
        },
        attrs={"long_name": "imputed arcsinh(-log10 p)", **attrs},
        name=IMPUTED,
    ).assign_coords(positions)
    if not merge:
        return imputed.to_dataset().assign_attrs(attrs)
    selection = {DIM_CELLTYPE: list(celltypes), DIM_ASSAY: list(assays)}
    for dim, names in selection.items():
        missing = [n for n in names if dim in ds.xindexes and n not in ds.get_index(dim)]
        if missing:
            error = UnknownCelltypeError if dim == DIM_CELLTYPE else UnknownAssayError
            raise error(
                f"The imputed {dim}s {missing} are not in the Dataset given, so they cannot be "
                f"merged into it (it has {list(ds.get_index(dim))}); pass merge=False, or "
                f"{dim}s= a subset of the Dataset's."
            )
    out = ds.sel({k: v for k, v in selection.items() if k in ds.dims})
    if IMPUTED in out:
        warnings.warn(
            "Overwriting the existing 'imputed' variable; pass merge=False to get the "
            "imputation alone.",
            AvocadoXrWarning,
            stacklevel=3,
        )
    return out.assign({IMPUTED: imputed}).assign_attrs({**ds.attrs, **attrs})
