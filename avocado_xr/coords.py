"""Genomic coordinates at genome scale: an xarray index over the segments of a layout.

A genome-wide compendium has ~1.2e8 positions but a few dozen segments (runs of contiguous
25-bp bins). :class:`GenomeIndex` is an xarray index on the ``position`` dimension that holds
the :class:`~avocado_xr.genome.GenomeLayout` and serves the ``chrom`` and ``start``
coordinates lazily: their values are computed from the segments only for the positions that
are read (a repr, a slice, ``.values``). Opening a store, slicing by position, selecting an
interval and building an imputation graph therefore cost O(segments), not O(positions):

- ``ds.isel(position=slice(...))`` keeps the index (the layout of the slice);
- ``ds.sel(chrom="chr20")`` and ``ds.sel(chrom="chr20", start=slice(1_000_000, 2_000_000))``
  select by label (bins overlapping the interval, in bp);
- :func:`avocado_xr.region` uses it too; ``xr.concat`` along ``position`` joins layouts.

To change the coordinates of an indexed Dataset, drop the index first
(``ds.drop_indexes(["chrom", "start"])``); the coordinates then become plain arrays, checked by
:func:`avocado_xr.validate`.

Examples
--------
>>> import numpy as np, xarray as xr
>>> from avocado_xr.genome import GenomeLayout
>>> layout = GenomeLayout.from_genome({"chr1": 1_000, "chr2": 500})
>>> ds = xr.Dataset(coords=genome_coords(layout))
>>> ds.sizes["position"], ds.start.values[38:42].tolist()
(60, [950, 975, 0, 25])
>>> ds.sel(chrom="chr2", start=slice(100, 200)).start.values.tolist()
[100, 125, 150, 175]
>>> layout_of(ds.isel(position=slice(30, 50))).n_bins
(10, 10)
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import Any

import numpy as np
import xarray as xr
from xarray.core.coordinate_transform import CoordinateTransform
from xarray.core.indexing import CoordinateTransformIndexingAdapter, IndexSelResult
from xarray.indexes import CoordinateTransformIndex

from .exceptions import RegionError
from .genome import GenomeLayout
from .names import CHROM, DIM_POSITION, RESOLUTION, START

__all__ = ["GenomeIndex", "dataset_layout", "genome_coords", "layout_of"]

_DTYPES = {CHROM: np.dtype(object), START: np.dtype(np.int64)}


class LayoutTransform(CoordinateTransform):
    """position -> (chrom, start) through the segments of a :class:`GenomeLayout`.

    ``suffix`` names another axis of the same kind, e.g. ``"_250bp"`` for the coarse bins
    of the genome factors (dimension ``position_250bp``, coordinates ``chrom_250bp`` and
    ``start_250bp``).
    """

    def __init__(self, layout: GenomeLayout, suffix: str = ""):
        names = (CHROM + suffix, START + suffix)
        super().__init__(names, {DIM_POSITION + suffix: layout.n_positions}, _DTYPES[START])
        self.layout, self.suffix = layout, suffix

    def forward(self, dim_positions: dict[str, Any]) -> dict[Hashable, Any]:
        positions = np.asarray(dim_positions[self.dims[0]])
        chrom, start = self.layout.coords_at(positions.ravel())
        chrom_name, start_name = self.coord_names
        return {
            chrom_name: chrom.reshape(positions.shape),
            start_name: start.reshape(positions.shape),
        }

    def reverse(self, coord_labels: dict[Hashable, Any]) -> dict[str, Any]:
        chrom_name, start_name = self.coord_names
        positions = self.layout.locate(coord_labels[chrom_name], coord_labels[start_name])
        return {self.dims[0]: positions}

    def equals(self, other, **kwargs) -> bool:
        return (
            isinstance(other, LayoutTransform)
            and self.layout == other.layout
            and self.suffix == other.suffix
        )

    def generate_coords(self, dims=None) -> dict[Hashable, Any]:
        return dict(zip(self.coord_names, self.layout.coords(), strict=True))


class _Coordinate(CoordinateTransformIndexingAdapter):
    """A lazy coordinate with its own dtype (object for ``chrom``, int64 for ``start``)."""

    @property
    def dtype(self) -> np.dtype:
        return (
            _DTYPES[CHROM] if self._coord_name == self._transform.coord_names[0] else _DTYPES[START]
        )


class GenomeIndex(CoordinateTransformIndex):
    """An xarray index of the ``chrom``/``start`` coordinates over a layout's segments.

    See the module notes. Build one with :func:`genome_coords`.
    """

    transform: LayoutTransform

    @property
    def layout(self) -> GenomeLayout:
        return self.transform.layout

    def create_variables(self, variables: Mapping[Any, xr.Variable] | None = None):
        dims, names = self.transform.dims, self.transform.coord_names
        attrs = {name: getattr((variables or {}).get(name), "attrs", None) for name in names}
        return {
            name: xr.Variable(dims, _Coordinate(self.transform, name), attrs=attrs[name])
            for name in names
        }

    def _with(self, layout: GenomeLayout) -> GenomeIndex:
        return GenomeIndex(LayoutTransform(layout, self.transform.suffix))

    def isel(self, indexers: Mapping[Any, Any]) -> GenomeIndex | None:
        key = indexers.get(self.transform.dims[0])
        if key is None:
            return self
        if isinstance(key, slice) and key.step in (None, 1):
            lo, hi, _ = key.indices(self.layout.n_positions)
            return self._with(self.layout.subset(lo, hi)) if hi > lo else None
        if isinstance(key, int | np.integer) or np.ndim(getattr(key, "data", key)) != 1:
            return None
        positions = np.arange(self.layout.n_positions)[np.asarray(getattr(key, "data", key))]
        if len(positions) == 0:
            return None
        chrom, start = self.layout.coords_at(positions)
        return self._with(GenomeLayout.from_coords(chrom, start, self.layout.resolution))

    def sel(self, labels: dict[Any, Any], method=None, tolerance=None) -> IndexSelResult:
        """``chrom=name`` (with ``start=slice(lo, hi)`` in bp: bins overlapping it)."""
        chrom_name, start_name = self.transform.coord_names
        dim = self.transform.dims[0]
        if chrom_name not in labels:
            raise RegionError(
                f"Select genomic positions with {chrom_name}= (and {start_name}=slice(lo, hi))."
            )
        chrom, window = labels[chrom_name], labels.get(start_name, slice(None))
        if not isinstance(chrom, str) or not isinstance(window, slice):
            raise RegionError(
                "Select positions by one chromosome name and a slice of bp, e.g. "
                "ds.sel(chrom='chr20', start=slice(1_000_000, 2_000_000)); use "
                "avocado_xr.region() for region strings."
            )
        lo = 0 if window.start is None else int(window.start)
        hi = np.iinfo(np.int64).max if window.stop is None else int(window.stop)
        ranges = self.layout.interval(chrom, lo, hi)
        if not ranges:
            known = sorted(set(self.layout.chrom))
            where = f"{chrom}:{lo}-{hi}" if window != slice(None) else chrom
            raise RegionError(f"No position overlaps {where}; the chromosomes are {known}.")
        if len(ranges) == 1:
            return IndexSelResult({dim: slice(*ranges[0])})
        return IndexSelResult({dim: np.concatenate([np.arange(*r) for r in ranges])})

    def concat(cls, indexes, dim, positions=None):  # noqa: N805 - xarray calls it this way
        layouts = [index.layout for index in indexes]
        joined = layouts[0]
        for layout in layouts[1:]:
            joined = joined.concat(layout)
        return indexes[0]._with(joined)

    concat = classmethod(concat)

    def __repr__(self) -> str:
        n = len(self.layout.n_bins)
        return f"GenomeIndex({self.layout.n_positions:,} positions in {n} segment(s))"


def genome_coords(layout: GenomeLayout, suffix: str = "") -> xr.Coordinates:
    """``chrom`` and ``start`` coordinates served lazily by a :class:`GenomeIndex` (with a
    ``suffix``: ``chrom<suffix>``/``start<suffix>`` along ``position<suffix>``)."""
    return xr.Coordinates.from_xindex(GenomeIndex(LayoutTransform(layout, suffix)))


def layout_of(obj) -> GenomeLayout | None:
    """The layout of a Dataset/DataArray's ``position`` axis when it has a
    :class:`GenomeIndex` (O(1)); None otherwise."""
    index = getattr(obj, "xindexes", {}).get(CHROM)
    return index.layout if isinstance(index, GenomeIndex) else None


def dataset_layout(obj) -> GenomeLayout:
    """The layout of a Dataset/DataArray's ``position`` axis: its :class:`GenomeIndex`'s
    (O(1)), or one built from its ``chrom``/``start`` coordinates (one pass over them)."""
    return layout_of(obj) or GenomeLayout.from_coords(
        np.asarray(obj[CHROM].values),
        np.asarray(obj[START].values),
        int(obj.attrs.get("resolution", RESOLUTION)),
    )
