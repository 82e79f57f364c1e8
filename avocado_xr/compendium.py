"""Build and reshape compendium Datasets: make, mask, select a region, block sizes.

A compendium is the labelled ``celltype x assay x position`` tensor of DESIGN.md, section 1;
:mod:`avocado_xr.store` writes and opens it on zarr.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import dask.array as da
import numpy as np
import pandas as pd
import xarray as xr

from . import __version__
from .bins import chrom_labels, parse_region
from .coords import genome_coords, layout_of
from .exceptions import ChunkingError, DimensionError, RegionError
from .genome import GenomeLayout
from .variables import (
    CHROM,
    DEFAULT_POSITION_CHUNK,
    DIM_ASSAY,
    DIM_CELLTYPE,
    DIM_POSITION,
    OBSERVED,
    RESOLUTION,
    SIGNAL,
    START,
    check_names,
    check_pairs,
    validate,
)

__all__ = ["make_compendium", "mask", "observed_pairs", "position_chunks", "region"]


def make_compendium(
    signal,
    *,
    celltypes: Sequence[str],
    assays: Sequence[str],
    chrom,
    start,
    observed=None,
    genome: str = "unknown",
    source: str | None = None,
    attrs: dict | None = None,
) -> xr.Dataset:
    """Label a ``(celltype, assay, position)`` array as a compendium Dataset.

    Parameters
    ----------
    signal : array_like
        float32 arcsinh(-log10 p) values, NaN where an experiment was not performed
        (NumPy or Dask).
    celltypes, assays : sequence of str
        Names along the first two axes.
    chrom, start : array_like, or GenomeLayout and None
        Chromosome and 0-based start (bp) of each 25-bp bin; or a
        :class:`~avocado_xr.genome.GenomeLayout` as ``chrom`` (and ``start=None``). Either way
        the coordinates are served lazily by a :class:`~avocado_xr.coords.GenomeIndex`.
    observed : array_like of bool, optional
        Which experiments exist. Default: tracks that are not entirely NaN (this computes a
        Dask-backed ``signal``, so pass it explicitly for large inputs).
    genome : str
        Genome assembly name, e.g. ``"hg19"``. Default is ``"unknown"``.
    source : str, optional
        Provenance. Default is ``"avocado_xr-<version>"``.
    attrs : dict, optional
        Extra attributes.

    Examples
    --------
    >>> import numpy as np
    >>> sig = np.zeros((1, 2, 4), dtype="float32")
    >>> ds = make_compendium(sig, celltypes=["E003"], assays=["H3K4me3", "H3K27me3"],
    ...                      chrom=["chr1"] * 4, start=[0, 25, 50, 75], genome="hg19")
    >>> ds.signal.dims, int(ds.observed.sum())
    (('celltype', 'assay', 'position'), 2)
    """
    if observed is None:
        observed = ~np.asarray(np.isnan(signal).all(axis=-1))
    if isinstance(chrom, GenomeLayout):
        layout = chrom
    else:
        start = np.asarray(start, dtype=np.int64)
        if start.size and start.min() < 0:
            raise DimensionError(f"Bin starts must be >= 0 (0-based bp), got {start.min()}.")
        layout = GenomeLayout.from_coords(chrom_labels(chrom), start, RESOLUTION)
    ds = xr.Dataset(
        {
            SIGNAL: ((DIM_CELLTYPE, DIM_ASSAY, DIM_POSITION), signal),
            OBSERVED: ((DIM_CELLTYPE, DIM_ASSAY), np.asarray(observed, dtype=bool)),
        },
        coords={
            DIM_CELLTYPE: np.asarray(celltypes, dtype=object),
            DIM_ASSAY: np.asarray(assays, dtype=object),
        },
        attrs={
            "resolution": RESOLUTION,
            "genome": genome,
            "transform": "arcsinh",
            "source": source or f"avocado_xr-{__version__}",
            **(attrs or {}),
        },
    ).assign_coords(genome_coords(layout))
    return validate(ds)


def observed_pairs(ds: xr.Dataset) -> list[tuple[str, str]]:
    """The (celltype, assay) names of the observed experiments, in array order."""
    observed = np.asarray(ds[OBSERVED].values)
    celltypes, assays = ds.get_index(DIM_CELLTYPE), ds.get_index(DIM_ASSAY)
    return [(str(celltypes[i]), str(assays[j])) for i, j in zip(*np.nonzero(observed), strict=True)]


def mask(ds: xr.Dataset, pairs: Iterable[tuple[str, str]]) -> xr.Dataset:
    """Return a copy of ``ds`` with the given experiments hidden.

    Hidden tracks get ``observed=False`` and an all-NaN signal, exactly like experiments
    that were never performed; the operation stays lazy on Dask-backed data.

    Parameters
    ----------
    ds : xarray.Dataset
        The compendium.
    pairs : iterable of (str, str)
        (celltype, assay) names to hide.

    Examples
    --------
    >>> import avocado_xr as ax
    >>> ds = ax.testing.simulate_compendium(n_positions=1_000, seed=0)
    >>> hidden = ax.mask(ds, [("C0", "A0")])
    >>> bool(hidden.observed.sel(celltype="C0", assay="A0"))
    False
    >>> bool(hidden.signal.sel(celltype="C0", assay="A0").isnull().all())
    True
    """
    validate(ds)
    pairs = check_pairs(pairs, "mask()")
    hide = np.zeros(ds[OBSERVED].shape, dtype=bool)
    celltypes = list(ds.get_index(DIM_CELLTYPE))
    assays = list(ds.get_index(DIM_ASSAY))
    for pair in pairs:
        (celltype,) = check_names(pair[0], celltypes, DIM_CELLTYPE)
        (assay,) = check_names(pair[1], assays, DIM_ASSAY)
        hide[celltypes.index(celltype), assays.index(assay)] = True
    keep = xr.DataArray(~hide, dims=(DIM_CELLTYPE, DIM_ASSAY))
    out = ds.copy()
    out[SIGNAL] = ds[SIGNAL].where(keep)
    out[OBSERVED] = ds[OBSERVED] & keep
    out.attrs["masked"] = ";".join(f"{c}/{a}" for c, a in pairs)
    return out


def region(ds: xr.Dataset, chrom_or_region, start: int | None = None, end: int | None = None):
    """Select the positions whose 25-bp bins overlap a genomic interval.

    Parameters
    ----------
    ds : xarray.Dataset
        Anything with ``chrom`` and ``start`` coordinates along ``position``.
    chrom_or_region : str
        A chromosome name (then give ``start`` and ``end``) or a region string such as
        ``"chr20:1,000,000-2,000,000"``. Coordinates are 0-based half-open.

    Examples
    --------
    >>> import avocado_xr as ax
    >>> ds = ax.testing.simulate_compendium(n_positions=1_000, seed=0)
    >>> sub = ax.region(ds, "chr2:1,000-2,000")
    >>> sub.sizes["position"], sub.start.values[0].item()
    (40, 1000)
    """
    if start is None and end is None:
        chrom, lo, hi = parse_region(chrom_or_region)
    else:
        chrom, lo, hi = parse_region((chrom_or_region, start, end))
    layout = layout_of(ds)
    if layout is not None:  # O(segments)
        ranges = layout.interval(chrom, lo, hi)
        if not ranges:
            if chrom not in layout.chrom:
                known = sorted(set(layout.chrom))
                raise RegionError(f"Chromosome {chrom!r} is not in the data; known: {known}.")
            raise RegionError(f"No position of the data overlaps {chrom}:{lo}-{hi}.")
        if len(ranges) == 1:
            return ds.isel({DIM_POSITION: slice(*ranges[0])})
        return ds.isel({DIM_POSITION: np.concatenate([np.arange(*r) for r in ranges])})
    res = int(ds.attrs.get("resolution", RESOLUTION))
    chroms = np.asarray(ds[CHROM].values)
    starts = np.asarray(ds[START].values)
    hit = (chroms == chrom) & (starts < hi) & (starts + res > lo)
    if not hit.any():
        known = sorted({str(c) for c in pd.unique(chroms)})
        if chrom not in known:
            raise RegionError(f"Chromosome {chrom!r} is not in the data; known: {known}.")
        raise RegionError(f"No position of the data overlaps {chrom}:{lo}-{hi}.")
    return ds.isel({DIM_POSITION: np.flatnonzero(hit)})


def position_chunks(data, position_chunk: int | None = None) -> tuple[int, ...]:
    """Block sizes along ``position`` for blockwise work on ``data``.

    ``data`` is a compendium (its ``signal``), a DataArray or an array whose last axis is
    ``position``. Default: the Dask chunks of Dask-backed data, else blocks of 131,072.

    Examples
    --------
    >>> import numpy as np
    >>> position_chunks(np.zeros((1, 1, 5)), 2)
    (2, 2, 1)
    """
    n = None
    if isinstance(data, xr.Dataset):
        n = data.sizes[DIM_POSITION]
        data = data[SIGNAL] if SIGNAL in data else None
    if isinstance(data, xr.DataArray):
        n = data.sizes[DIM_POSITION]
        data = data.transpose(..., DIM_POSITION).data
    if position_chunk is None and isinstance(data, da.Array):
        return tuple(int(c) for c in data.chunks[-1])
    if position_chunk is not None and (int(position_chunk) != position_chunk or position_chunk < 1):
        raise ChunkingError(f"position_chunk must be a positive integer, got {position_chunk!r}.")
    size = int(position_chunk or DEFAULT_POSITION_CHUNK)
    n = int(data.shape[-1]) if n is None else n
    return tuple(min(size, n - lo) for lo in range(0, n, size))
