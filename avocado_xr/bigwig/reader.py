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

Readers
-------
Two libraries compute this rule. `pybigtools <https://pypi.org/project/pybigtools/>`_ (the
optional ``fast`` extra: ``pip install 'avocado-xr[fast]'``) bins in Rust, 1.5-2x faster than
pyBigWig's per-base values plus NumPy; pyBigWig is the fallback, and takes over any file
pybigtools cannot read (e.g. one without any record). Both compute the mean in float64
(pyBigWig's per-base values summed base by base, pybigtools' value x overlap summed record by
record); those sums are exact unless a bin mixes values about 2**29 or more apart, and even
then the float32 rounding hides the difference but for rare ties, so the stored bins are the
same bits (the tests check this on every real file). The environment variable
``AVOCADO_XR_BIGWIG_READER`` (``auto``, the default; ``pybigtools``; ``pyBigWig``) picks one,
e.g. for benchmarks.
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
    "READERS",
    "BigWigArray",
    "bin_means",
    "file_chroms",
    "layout_for",
    "read_bigwig",
    "read_bins",
    "reader_name",
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
        ``25 * n_bins`` per-base values, NaN where no record covers the base (not modified).
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

    Notes
    -----
    A bin's sum is the float64 sum of its covered bases in base order. Bins whose 25 bases
    are all covered (the common case) are summed in one pass over the whole array; only the
    others are masked and summed again, which gives the same bits as masking everything.

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
    count = np.full(n_bins, res, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):  # inf - inf, 0 / 0: NaN
        total = windows.sum(axis=1, dtype=np.float64)  # NaN in every bin with an uncovered base
        partial = np.flatnonzero(np.isnan(total))
        if partial.size:
            some = windows[partial]
            covered = ~np.isnan(some)
            total[partial] = np.where(covered, some, 0).sum(axis=1, dtype=np.float64)
            if gaps == "missing":
                count[partial] = covered.sum(axis=1, dtype=np.float64)
        if gaps == "zero" and n_valid is not None and n_valid < n_bins * res:
            count[-1] = n_valid - (n_bins - 1) * res
        mean = total / count
    mean[count == 0] = np.nan
    return mean.astype(np.float32)


#: bins binned per ``pyBigWig.values`` call (25 float32 per bin: 800 KiB). Larger windows
#: decompress each bigWig data block once instead of once per window it overlaps (1,024-bin
#: windows made the reads 2-3x slower); measured in ``benchmarks/bench_ingest.py``.
_WINDOW_BINS = 8192


def read_bins(bw, file_chrom: str | None, bp_start: int, n_bins: int, chrom_size: int, gaps: str):
    """Binned values of ``n_bins`` bins from ``bp_start`` on one chromosome of an open
    pyBigWig file (``file_chrom`` None: a chromosome the file lacks)."""
    res = RESOLUTION
    if file_chrom is None:
        return _uncovered(n_bins, gaps)
    out = np.empty(n_bins, dtype=np.float32)
    for first in range(0, n_bins, _WINDOW_BINS):
        n = min(_WINDOW_BINS, n_bins - first)
        lo = bp_start + first * res
        hi = lo + n * res if chrom_size is None else min(lo + n * res, chrom_size)
        values = None
        if hi > lo:
            read = bw.values(file_chrom, lo, hi, numpy=True)
            if len(read) == n * res:
                values = read
            elif len(read) == hi - lo:  # the chromosome's last, short bin
                values = np.full(n * res, np.nan, dtype=np.float32)
                values[: hi - lo] = read
        if values is None:  # a file without any record returns nothing
            values = np.full(n * res, np.nan, dtype=np.float32)
        out[first : first + n] = bin_means(values, n, n_valid=hi - lo, gaps=gaps)
    return out


def _uncovered(n_bins: int, gaps: str) -> np.ndarray:
    if gaps == "missing":
        return np.full(n_bins, np.nan, dtype=np.float32)
    return np.zeros(n_bins, dtype=np.float32)


#: bins per pybigtools call; it allocates ~48 bytes a bin, so a call stays below glibc's
#: 128 KiB mmap threshold, which Dask workers freeze (they set MALLOC_TRIM_THRESHOLD_): larger
#: allocations are mapped and page-faulted afresh on every call there
_BIGTOOLS_BINS = 2048

#: the libraries that can read and bin a bigWig, fastest first
READERS = ("pybigtools", "pyBigWig")
_READER_VARIABLE = "AVOCADO_XR_BIGWIG_READER"


def reader_name() -> str:
    """The library :class:`BigWigArray` bins with: ``"pybigtools"`` if it is installed,
    else ``"pyBigWig"``; the environment variable ``AVOCADO_XR_BIGWIG_READER`` (``auto``,
    ``pybigtools`` or ``pyBigWig``) overrides the choice.

    Raises
    ------
    ConfigError
        The variable names an unknown reader, or pybigtools when it is not installed.
    """
    choice = os.environ.get(_READER_VARIABLE, "auto") or "auto"
    if choice not in ("auto", *READERS):
        raise ConfigError(
            f"{_READER_VARIABLE}={choice!r} is not a bigWig reader; use 'auto', "
            f"{' or '.join(repr(r) for r in READERS)}."
        )
    if choice == "pyBigWig":
        return choice
    try:
        import pybigtools  # noqa: F401
    except ImportError:
        if choice == "pybigtools":
            raise ConfigError(
                f"{_READER_VARIABLE}=pybigtools but pybigtools is not installed: "
                "pip install 'avocado-xr[fast]'."
            ) from None
        return "pyBigWig"
    return "pybigtools"


class _OpenTrack:
    """One bigWig opened for binned reads on a layout (see :meth:`BigWigArray.open`)."""

    def __init__(self, array: BigWigArray, reader: str):
        self.array = array
        self._bigtools = None
        self._pybigwig = None
        if reader == "pybigtools":
            import pybigtools

            self._buffer = np.empty(_BIGTOOLS_BINS, dtype=np.float64)  # reused by each call
            try:
                self._bigtools = pybigtools.open(array.path)
            except Exception:  # pyBigWig reads it, or names what is wrong with it
                self._bigtools = None
        if self._bigtools is None:
            self._pybigwig = open_bigwig(array.path)

    def read(self, lo: int, hi: int) -> np.ndarray:
        """Binned values of positions ``[lo, hi)`` (float32, NaN where uncovered)."""
        arr = self.array
        out = np.full(max(hi - lo, 0), np.nan, dtype=np.float32)
        for chrom, bp, n, off, size in arr.layout.pieces(lo, hi):
            file_chrom = arr.chroms.get(chrom)
            if file_chrom is None:
                out[off : off + n] = _uncovered(n, arr.gaps)
                continue
            values = None
            if self._bigtools is not None:
                values = self._bigtools_bins(file_chrom, bp, n, size)
            if values is None:
                try:
                    values = read_bins(self._pybigwig_file(), file_chrom, bp, n, size, arr.gaps)
                except RuntimeError as err:
                    raise BigWigReadError(
                        f"{arr.path}: cannot read {chrom}:{bp}-{bp + n * RESOLUTION} ({err}); "
                        "the file is corrupt or truncated."
                    ) from err
            out[off : off + n] = values
        return out

    def _bigtools_bins(self, file_chrom, bp, n, size) -> np.ndarray | None:
        """pybigtools' exact bin means, or None if it cannot read this piece."""
        res = RESOLUTION
        full = n if size is None else min(n, max(0, (size - bp) // res))
        kw = dict(summary="mean", exact=True, fillna=None)
        kw["uncovered"] = None if self.array.gaps == "missing" else 0.0
        out = np.full(n, np.nan, dtype=np.float32)
        try:
            for first in range(0, full, _BIGTOOLS_BINS):
                k = min(_BIGTOOLS_BINS, full - first)
                lo = bp + first * res
                arr = self._buffer[:k]
                out[first : first + k] = self._bigtools.values(
                    file_chrom, lo, lo + k * res, bins=k, arr=arr, **kw
                )
            tail = bp + full * res
            if full < n and size is not None and tail < size:  # the chromosome's short last bin
                out[full] = self._bigtools.values(file_chrom, tail, size, bins=1, **kw)[0]
        except Exception:  # e.g. a file without any record: pyBigWig reads it from now on
            self._bigtools.close()
            self._bigtools = None
            return None
        return out

    def _pybigwig_file(self):
        if self._pybigwig is None:
            self._pybigwig = open_bigwig(self.array.path)
        return self._pybigwig

    def close(self) -> None:
        for handle in (self._bigtools, self._pybigwig):
            if handle is not None:
                handle.close()
        self._bigtools = self._pybigwig = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


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

    def open(self, reader: str | None = None) -> _OpenTrack:
        """Open the file once for several :meth:`read`-like calls (a context manager).

        Parameters
        ----------
        reader : {"pybigtools", "pyBigWig"}, optional
            The library to bin with (default: :func:`reader_name`).
        """
        reader = reader_name() if reader is None else reader
        if reader not in READERS:
            raise ConfigError(f"reader must be one of {READERS}, got {reader!r}")
        return _OpenTrack(self, reader)

    def read(self, lo: int, hi: int) -> np.ndarray:
        """Binned values of positions ``[lo, hi)`` (float32, NaN where uncovered)."""
        if hi <= lo:
            return np.full(0, np.nan, dtype=np.float32)
        with self.open() as track:
            return track.read(lo, hi)

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
