"""Validation of the compendium contract, with the names of its dimensions and variables
(defined in the leaf module :mod:`avocado_xr.names`, re-exported here).

The compendium is an :class:`xarray.Dataset` with ``signal`` (celltype, assay, position),
``observed`` (celltype, assay) and the coordinates ``celltype``, ``assay``, ``chrom`` and
``start`` (see DESIGN.md, section 1). :func:`validate` checks all of it without loading any
signal values unless ``check_values=True`` is asked for.
"""

from __future__ import annotations

from collections.abc import Iterable

import dask
import numpy as np
import xarray as xr

from .exceptions import (
    DimensionError,
    InvalidSignalError,
    RegionError,
    UnknownAssayError,
    UnknownCelltypeError,
)
from .names import (
    CHROM,
    DEFAULT_POSITION_CHUNK,
    DIM_ASSAY,
    DIM_CELLTYPE,
    DIM_POSITION,
    IMPUTED,
    OBSERVED,
    RESOLUTION,
    SIGNAL,
    START,
)

__all__ = [
    "CHROM",
    "DEFAULT_POSITION_CHUNK",
    "DIM_ASSAY",
    "DIM_CELLTYPE",
    "DIM_POSITION",
    "IMPUTED",
    "OBSERVED",
    "RESOLUTION",
    "SIGNAL",
    "START",
    "check_names",
    "check_pairs",
    "validate",
]

_SPECS = {
    SIGNAL: ((DIM_CELLTYPE, DIM_ASSAY, DIM_POSITION), "f"),
    OBSERVED: ((DIM_CELLTYPE, DIM_ASSAY), "b"),
    CHROM: ((DIM_POSITION,), "OUT"),
    START: ((DIM_POSITION,), "iu"),
}


def _check_spec(ds: xr.Dataset, name: str) -> None:
    dims, kinds = _SPECS[name]
    if name not in ds.variables:
        raise DimensionError(
            f"The compendium has no variable {name!r}; it needs {name!r} with dims {dims}. "
            "Build compendia with avocado_xr.datasets, avocado_xr.testing.simulate_compendium "
            "or avocado_xr.open_compendium."
        )
    var = ds[name]
    if var.dims != dims:
        raise DimensionError(
            f"Variable {name!r} must have dims {dims} but has {var.dims}. "
            f"Consider ds[{name!r}].transpose(*{dims})."
        )
    if var.dtype.kind not in kinds:
        raise DimensionError(
            f"Variable {name!r} has dtype {var.dtype}, expected one of kind(s) {kinds!r}."
        )


def validate(ds: xr.Dataset, *, check_values: bool = False) -> xr.Dataset:
    """Check that ``ds`` follows the compendium contract.

    Parameters
    ----------
    ds : xarray.Dataset
        The compendium.
    check_values : bool
        Also scan the signal (this computes Dask-backed data): NaN inside an observed track
        and finite values in an unobserved one are errors. Default is False.

    Returns
    -------
    xarray.Dataset
        ``ds`` itself, so the call can be chained.

    Raises
    ------
    DimensionError
        A variable or coordinate is missing or has the wrong dims or dtype.
    InvalidSignalError
        With ``check_values=True``, NaN inside an observed track (the message names the pair).

    Examples
    --------
    >>> import avocado_xr as ax
    >>> ds = ax.testing.simulate_compendium(n_positions=2_000, seed=0)
    >>> ax.validate(ds, check_values=True) is ds
    True
    >>> ax.validate(ds.drop_vars("observed"))
    Traceback (most recent call last):
    ...
    avocado_xr.exceptions.DimensionError: The compendium has no variable 'observed'; ...
    """
    for name in _SPECS:
        _check_spec(ds, name)
    for dim in (DIM_CELLTYPE, DIM_ASSAY):
        if dim not in ds.xindexes:
            raise DimensionError(f"The compendium needs an index coordinate {dim!r} of names.")
        names = ds.get_index(dim)
        if not all(isinstance(n, str) for n in names):
            raise DimensionError(
                f"{dim} labels must be strings, got {names.tolist()[:5]} ({names.dtype}); "
                f"relabel with ds.assign_coords({dim}=[...names as str...])."
            )
        if not names.is_unique:
            dup = names[names.duplicated()].tolist()
            raise DimensionError(f"Duplicate {dim} names {dup}; each {dim} must appear once.")
    if ds.sizes[DIM_POSITION] == 0:
        raise DimensionError("The compendium has no positions.")
    _check_coordinates(ds)
    if check_values:
        _check_values(ds)
    return ds


def _check_coordinates(ds: xr.Dataset) -> None:
    """The coordinate rules, checked on the layout of the positions: O(segments) for indexed
    coordinates (:mod:`avocado_xr.coords`), one vectorised pass for plain arrays."""
    from .coords import layout_of
    from .genome import GenomeLayout

    layout = layout_of(ds)
    if layout is None:
        if hasattr(ds[START].data, "dask") or hasattr(ds[CHROM].data, "dask"):
            return  # lazily stored coordinates are checked where they are read
        resolution = int(ds.attrs.get("resolution", RESOLUTION))
        start = np.asarray(ds[START].values)
        chrom = np.asarray(ds[CHROM].values)
        if start.size and start.min() < 0:
            k = int(np.argmin(start))
            raise DimensionError(
                f"Bin {k} starts at {chrom[k]}:{start[k]}; bin starts are 0-based bp, so they "
                "must be >= 0."
            )
        try:
            layout = GenomeLayout.from_coords(chrom, start, resolution)
        except RegionError as err:
            raise DimensionError(f"{err} (the start coordinate)") from err
    layout.check()


def _check_values(ds: xr.Dataset) -> None:
    observed = np.asarray(ds[OBSERVED].values)
    has_nan = ds[SIGNAL].isnull().any(DIM_POSITION)
    all_nan = ds[SIGNAL].isnull().all(DIM_POSITION)
    has_nan, all_nan = (np.asarray(v) for v in dask.compute(has_nan, all_nan))
    celltypes = ds.get_index(DIM_CELLTYPE)
    assays = ds.get_index(DIM_ASSAY)
    for i, j in zip(*np.nonzero(observed & has_nan), strict=True):
        raise InvalidSignalError(
            f"Track ({celltypes[i]!r}, {assays[j]!r}) is marked observed but its signal has NaN. "
            "Fill gaps explicitly (the paper's recipe is NaN -> 0 before arcsinh) or mark the "
            "track unobserved with ds.avocado.mask()."
        )
    for i, j in zip(*np.nonzero(~observed & ~all_nan), strict=True):
        raise InvalidSignalError(
            f"Track ({celltypes[i]!r}, {assays[j]!r}) is marked unobserved but has signal values; "
            "set observed to True for it, or hide it with ds.avocado.mask()."
        )


def check_pairs(pairs, what: str) -> list[tuple[str, str]]:
    """``pairs`` as a list of (celltype, assay) tuples of strings, or a clear error.

    Examples
    --------
    >>> check_pairs([("E065", "H3K4me3")], "mask")
    [('E065', 'H3K4me3')]
    >>> check_pairs(("E065", "H3K4me3"), "mask")
    Traceback (most recent call last):
    ...
    avocado_xr.exceptions.InvalidSignalError: mask takes a list of (celltype, assay) pairs, ...
    """
    if isinstance(pairs, str) or (
        isinstance(pairs, tuple) and len(pairs) == 2 and all(isinstance(p, str) for p in pairs)
    ):
        raise InvalidSignalError(
            f"{what} takes a list of (celltype, assay) pairs, got {pairs!r}; write "
            f"[{tuple(pairs) if not isinstance(pairs, str) else pairs!r}]."
        )
    out = []
    for pair in pairs:
        if isinstance(pair, str) or len(pair) != 2:
            raise InvalidSignalError(
                f"{what} takes (celltype, assay) pairs, got {pair!r} in the list; e.g. "
                "[('E065', 'H3K4me3')]."
            )
        out.append((str(pair[0]), str(pair[1])))
    return out


def check_names(values: Iterable[str] | str | None, known, dim: str) -> list[str]:
    """Return ``values`` as a list of names that all occur in ``known``.

    ``None`` means all of ``known``; a single string is one name.
    """
    known = [str(k) for k in known]
    if values is None:
        return known
    if isinstance(values, str):
        values = [values]
    values = [str(v) for v in values]
    missing = [v for v in values if v not in known]
    if missing:
        error = UnknownCelltypeError if dim == DIM_CELLTYPE else UnknownAssayError
        raise error(f"Unknown {dim} {missing}; the known {dim}s are {known}.")
    return values
