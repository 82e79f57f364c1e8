"""Read bigWig files as 25-bp binned tracks: a lazy, picklable reader on a genome layout.

:class:`BigWigArray` and :func:`read_bigwig` give a lazily evaluated view of one bigWig on a
:class:`~avocado_xr.genome.GenomeLayout` (whole chromosomes or a BED region set). It stores
the path, never a pyBigWig handle, and opens the file inside each read, so Dask can ship it to
any worker. Chromosome names and sizes are checked by :mod:`.chroms`, file integrity by
:mod:`.integrity`.

Binning rule
------------
The value of a bin ``[s, s + 25)`` is the mean of the per-base values of the bigWig over the
bases of the bin, computed in float64 and stored as float32. It is exact at bin edges for
records of any span: a record is split base by base, so a 1-bp record counts once, a
``[s - 10, s + 60)`` bedGraph run counts on all 25 bases of the bin, and two records that
meet inside a bin are weighted by their overlaps. Bases that no record covers are *gaps*;
``gaps="missing"`` (the default) leaves them out of the mean, so a bin is NaN only if none of
its bases is covered (as ``pyBigWig.stats(..., exact=True)`` does); ``gaps="zero"`` counts them
as 0 (for files that drop zero runs, e.g. deepTools ``bamCoverage`` output). The last bin of
a chromosome is shorter than 25 bp: only its bases inside the chromosome count. NaN bins are
left to the caller's missing-value policy (see :func:`avocado_xr.bigwig.ingest`).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np

from ..assembly import GenomeLike, genome_sizes
from ..exceptions import BigWigReadError, ConfigError
from ..genome import GenomeLayout
from ..variables import CHROM, DEFAULT_POSITION_CHUNK, DIM_POSITION, RESOLUTION, START
from .chroms import check_chroms
from .integrity import check_bigwig_file, open_bigwig

__all__ = [
    "GAPS",
    "BigWigArray",
    "bin_means",
    "file_chroms",
    "layout_for",
    "read_bigwig",
    "read_bins",
]

#: how uncovered bases enter a bin's mean
GAPS = ("missing", "zero")


def bin_means(
    values: np.ndarray, n_bins: int, *, n_valid: int | None = None, gaps: str = "missing"
):
    """Means of consecutive 25-base windows of a per-base array (NaN = uncovered base).

    Parameters
    ----------
    values : numpy.ndarray
        ``25 * n_bins`` per-base values, NaN where no record covers the base.
    n_bins : int
        Number of bins.
    n_valid : int, optional
        Number of leading bases that lie inside the chromosome (the rest are padding of
        the chromosome's last, short bin). Default: all.
    gaps : {"missing", "zero"}
        Leave uncovered bases out of the mean (default) or count them as 0.

    Returns
    -------
    numpy.ndarray
        float32 means, NaN for bins without any covered base.

    Examples
    --------
    >>> v = np.full(50, np.nan, dtype="float32"); v[:10] = 2.0; v[10:25] = 4.0
    >>> bin_means(v, 2)
    array([3.2, nan], dtype=float32)
    >>> bin_means(v, 2, gaps="zero")
    array([3.2, 0. ], dtype=float32)
    """
    if gaps not in GAPS:
        raise ConfigError(f"gaps must be one of {GAPS}, got {gaps!r}")
    res = RESOLUTION
    windows = values.reshape(n_bins, res)
    covered = ~np.isnan(windows)
    total = np.where(covered, windows, 0).sum(axis=1, dtype=np.float64)
    if gaps == "zero":
        count = np.full(n_bins, res, dtype=np.float64)
        if n_valid is not None and n_valid < n_bins * res:
            count[-1] = n_valid - (n_bins - 1) * res
    else:
        count = covered.sum(axis=1, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = total / count
    mean[count == 0] = np.nan
    return mean.astype(np.float32)


#: bins binned per pyBigWig call: 1024 x 25 float32 = 100 KiB, below glibc's 128 KiB mmap
#: threshold, so temporaries are reused from the heap rather than mapped and faulted in each
#: time (Dask workers set MALLOC_TRIM_THRESHOLD_, which freezes that threshold)
_SUB_BINS = 1024


def read_bins(bw, file_chrom: str | None, bp_start: int, n_bins: int, chrom_size: int, gaps: str):
    """Binned values of ``n_bins`` bins from ``bp_start`` on one chromosome of an open file."""
    res = RESOLUTION
    out = np.full(n_bins, np.nan, dtype=np.float32)
    if file_chrom is None:
        return out if gaps == "missing" else np.zeros(n_bins, dtype=np.float32)
    for first in range(0, n_bins, _SUB_BINS):
        n = min(_SUB_BINS, n_bins - first)
        lo = bp_start + first * res
        hi = min(lo + n * res, chrom_size)
        values = np.full(n * res, np.nan, dtype=np.float32)
        if hi > lo:
            read = bw.values(file_chrom, lo, hi, numpy=True)
            if len(read) == hi - lo:  # a file without any record returns nothing
                values[: hi - lo] = read
        out[first : first + n] = bin_means(values, n, n_valid=hi - lo, gaps=gaps)
    return out


class BigWigArray:
    """A lazy, picklable 1-D array: one bigWig binned at 25 bp on a genome layout.

    It implements ``shape``, ``dtype``, ``ndim`` and ``__getitem__`` for
    :func:`dask.array.from_array`. Only the path and small metadata are stored; the file is
    opened inside each read (pyBigWig handles cannot be pickled).

    Parameters
    ----------
    path : str or path
        A local bigWig file.
    layout : GenomeLayout
        The positions to read.
    chroms : dict of str to str
        Genome chromosome -> file chromosome (from :func:`check_chroms`); genome chromosomes
        not in it read as uncovered.
    gaps : {"missing", "zero"}
        How uncovered bases enter the bin mean (see the module notes).

    Examples
    --------
    >>> import pickle
    >>> lay = GenomeLayout.from_genome({"chr1": 100})
    >>> arr = BigWigArray("track.bw", lay, {"chr1": "chr1"})
    >>> arr.shape, arr.dtype, pickle.loads(pickle.dumps(arr)).path
    ((4,), dtype('float32'), 'track.bw')
    """

    ndim = 1
    dtype = np.dtype(np.float32)

    def __init__(
        self, path, layout: GenomeLayout, chroms: Mapping[str, str], gaps: str = "missing"
    ):
        if gaps not in GAPS:
            raise ConfigError(f"gaps must be one of {GAPS}, got {gaps!r}")
        self.path = os.fspath(path)
        self.layout = layout
        self.chroms = dict(chroms)
        self.gaps = gaps

    @property
    def shape(self) -> tuple[int]:
        return (self.layout.n_positions,)

    def read(self, lo: int, hi: int) -> np.ndarray:
        """Binned values of positions ``[lo, hi)`` (float32, NaN where uncovered)."""
        out = np.full(max(hi - lo, 0), np.nan, dtype=np.float32)
        if hi <= lo:
            return out
        bw = open_bigwig(self.path)
        try:
            for chrom, bp, n, off, size in self.layout.pieces(lo, hi):
                try:
                    out[off : off + n] = read_bins(
                        bw, self.chroms.get(chrom), bp, n, size, self.gaps
                    )
                except RuntimeError as err:
                    raise BigWigReadError(
                        f"{self.path}: cannot read {chrom}:{bp}-{bp + n * RESOLUTION} ({err}); "
                        "the file is corrupt or truncated."
                    ) from err
        finally:
            bw.close()
        return out

    def __getitem__(self, key):
        if not isinstance(key, tuple):
            key = (key,)
        if len(key) != 1 or not isinstance(key[0], slice):
            index = np.arange(self.shape[0])[key]  # fancy keys: read the covering span
            if index.size == 0:
                return np.empty(index.shape, dtype=self.dtype)
            lo, hi = int(index.min()), int(index.max()) + 1
            return self.read(lo, hi)[index - lo]
        lo, hi, step = key[0].indices(self.shape[0])
        return self.read(lo, hi)[::step] if step != 1 else self.read(lo, hi)

    def __reduce__(self):
        return (type(self), (self.path, self.layout, self.chroms, self.gaps))


def file_chroms(
    path: str,
    genome,
    layout: GenomeLayout,
    *,
    chrom_map=None,
    extra_chroms: str = "ignore",
    missing_chroms: str = "missing",
) -> dict[str, str]:
    """Check that ``path`` is a complete bigWig whose chromosomes fit ``genome``; return the
    genome -> file chromosome names of the layout's chromosomes the file has.

    Raises
    ------
    BigWigReadError, ChromosomeError, ChromSizeError
        The file is incomplete or not a bigWig, or its chromosomes contradict the genome.
    """
    check_bigwig_file(path)
    bw = open_bigwig(path)
    try:
        sizes = dict(bw.chroms())
    finally:
        bw.close()
    return check_chroms(
        sizes,
        genome,
        layout.chrom,
        chrom_map=chrom_map,
        extra_chroms=extra_chroms,
        missing_chroms=missing_chroms,
        path=path,
    )


def layout_for(genome: GenomeLike, chroms=None, regions=None, rule: str = "avocado"):
    """The layout ingest and :func:`read_bigwig` read: ``regions`` (a BED region set) if
    given, else whole chromosomes of ``genome``."""
    if regions is not None:
        return GenomeLayout.from_regions(regions, genome, chroms=chroms, rule=rule)
    return GenomeLayout.from_genome(genome, chroms)


def read_bigwig(
    path: str | os.PathLike,
    *,
    genome: GenomeLike,
    chroms: Iterable[str] | None = None,
    regions=None,
    region_rule: str = "avocado",
    chrom_map: Mapping[str, str] | None = None,
    extra_chroms: str = "ignore",
    missing_chroms: str = "missing",
    gaps: str = "missing",
    chunks: int = DEFAULT_POSITION_CHUNK,
):
    """Open one bigWig lazily as a 25-bp binned DataArray on ``position``.

    Values are the raw bin means (see the module notes), NaN where no base is covered;
    no missing-value policy or transform is applied here (:func:`avocado_xr.ingest`
    does that).

    Parameters
    ----------
    path : str or path
        A local bigWig file.
    genome : str, path, mapping or Genome
        The declared assembly (see :func:`avocado_xr.assembly.genome_sizes`); sizes are
        checked.
    chroms : list of str, optional
        Genome chromosomes to read (default: all, or all of ``regions``).
    regions : path, DataFrame or iterable, optional
        A BED region set (see :meth:`~avocado_xr.genome.GenomeLayout.from_regions`).
    region_rule : {"avocado", "overlap"}
        Bins of a region; see :meth:`~avocado_xr.genome.GenomeLayout.from_regions`.
        Default ``"avocado"``.
    chrom_map, extra_chroms, missing_chroms
        Chromosome policies; see :func:`avocado_xr.bigwig.chroms.check_chroms`.
    gaps : {"missing", "zero"}
        How uncovered bases enter a bin's mean. Default ``"missing"``.
    chunks : int
        Positions per Dask chunk. Default is 131072.

    Returns
    -------
    xarray.DataArray
        Dask-backed float32 with ``chrom`` and ``start`` coordinates.

    Examples
    --------
    >>> import avocado_xr as ax
    >>> trk = ax.read_bigwig("E003-H3K4me3.bw", genome="hg19",  # doctest: +SKIP
    ...                             regions="pilot.bed")
    >>> trk.sel(position=slice(0, 10)).values  # doctest: +SKIP
    """
    import dask.array as da
    import xarray as xr
    from dask.base import tokenize

    genome = genome_sizes(genome)
    layout = layout_for(genome, chroms, regions, region_rule)
    path = os.fspath(path)
    matched = file_chroms(
        path,
        genome,
        layout,
        chrom_map=chrom_map,
        extra_chroms=extra_chroms,
        missing_chroms=missing_chroms,
    )
    array = BigWigArray(path, layout, matched, gaps)
    stat = os.stat(path)
    name = "bigwig-" + tokenize(path, stat.st_mtime_ns, stat.st_size, layout.token(), matched, gaps)
    data = da.from_array(array, chunks=(chunks,), asarray=False, name=name, meta=np.empty(0, "f4"))
    chrom, start = layout.coords()
    return xr.DataArray(
        data,
        dims=(DIM_POSITION,),
        coords={CHROM: (DIM_POSITION, chrom), START: (DIM_POSITION, start)},
        name=Path(path).name,
        attrs={"resolution": RESOLUTION, "genome": genome.name, "source": path, "gaps": gaps},
    )
