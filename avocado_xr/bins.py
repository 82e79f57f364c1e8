"""25-bp bins: region strings, segments of coordinate arrays, coarse-bin indices and the bins
of a BED region set. The pieces :class:`avocado_xr.genome.GenomeLayout` is built from; they work
on plain arrays, so data that has no layout yet (coordinates, BED files) can use them.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from .assembly import GenomeLike, genome_sizes
from .bed import BedLike, bed_label, read_bed
from .exceptions import GenomeError, RegionError
from .names import RESOLUTION

__all__ = [
    "REGION_RULES",
    "chrom_labels",
    "parse_region",
    "region_bins",
    "scale_index",
    "segment_ids",
    "segment_runs",
]

#: which bins a BED region gets (see :meth:`avocado_xr.genome.GenomeLayout.from_regions`)
REGION_RULES = ("avocado", "overlap")

_REGION = re.compile(r"^\s*([^:\s]+)\s*:\s*([\d,_]+)\s*-\s*([\d,_]+)\s*$")


def parse_region(region: str | tuple) -> tuple[str, int, int]:
    """Parse ``"chr20:1,000,000-2,000,000"`` or ``("chr20", 1_000_000, 2_000_000)``.

    Coordinates are 0-based half-open, as in BED files.

    Examples
    --------
    >>> parse_region("chr20:1,000,000-2,000,000")
    ('chr20', 1000000, 2000000)
    >>> parse_region(("chr1", 0, 500))
    ('chr1', 0, 500)
    """
    if isinstance(region, str):
        match = _REGION.match(region)
        if not match:
            why = ""
            if region.count(":") > 1:
                why = " (a region lies on one chromosome; select each chromosome separately)"
            raise RegionError(
                f"Cannot parse region {region!r}{why}; write it as "
                "'chr20:1,000,000-2,000,000' or pass (chrom, start, end)."
            )
        chrom, start, end = match.group(1), match.group(2), match.group(3)
        start, end = (int(re.sub(r"[,_]", "", v)) for v in (start, end))
    else:
        try:
            chrom, start, end = region
            start, end = int(start), int(end)
        except (TypeError, ValueError) as err:
            raise RegionError(
                f"Cannot parse region {region!r}; pass (chrom, start, end) with integer bounds."
            ) from err
    if start < 0 or end <= start:
        raise RegionError(
            f"Region {chrom}:{start}-{end} is empty or negative; need 0 <= start < end."
        )
    return str(chrom), start, end


def chrom_labels(chrom) -> np.ndarray:
    """Chromosome names as an object array whose equal names share one string object.

    Genome-wide coordinates have ~10^8 bins but a few dozen chromosome names; sharing the
    names keeps the array at 8 bytes per bin (zarr and NumPy string arrays otherwise hold
    one string per bin).
    """
    codes, names = pd.factorize(np.asarray(chrom), sort=False)
    if (codes < 0).any():
        raise RegionError("chrom has missing values")
    return np.asarray([str(n) for n in names], dtype=object)[codes]


def segment_runs(chrom, start, resolution: int = RESOLUTION) -> tuple[np.ndarray, np.ndarray]:
    """First index and length of each run of contiguous bins (a *segment*).

    A new segment starts at a new chromosome or where a bin does not follow the previous one
    by ``resolution`` bp. This is the package's one definition of contiguity.

    Examples
    --------
    >>> first, length = segment_runs(["c1", "c1", "c1", "c2"], [0, 25, 100, 0])
    >>> first.tolist(), length.tolist()
    ([0, 2, 3], [2, 1, 1])
    """
    start = np.asarray(start, dtype=np.int64)
    if len(start) == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    code = pd.factorize(np.asarray(chrom), sort=False)[0]
    new = np.ones(len(start), dtype=bool)
    new[1:] = (code[1:] != code[:-1]) | (start[1:] != start[:-1] + resolution)
    first = np.flatnonzero(new)
    return first, np.diff(np.r_[first, len(start)])


def segment_ids(chrom, start, resolution: int = RESOLUTION) -> np.ndarray:
    """Segment number of every bin (see :func:`segment_runs`).

    Examples
    --------
    >>> segment_ids(np.array(["c1", "c1", "c1", "c2"]), np.array([0, 25, 100, 0]))
    array([0, 0, 1, 2])
    """
    _, length = segment_runs(chrom, start, resolution)
    return np.repeat(np.arange(len(length)), length)


def scale_index(
    chrom: np.ndarray, start: np.ndarray, scale: int, resolution: int = RESOLUTION
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Map each position to a coarse bin of ``scale`` bp that stays within one segment.

    Parameters
    ----------
    chrom, start : numpy.ndarray
        Chromosome and 0-based start of each fine bin, in compendium order.
    scale : int
        Width of the coarse bins in bp (a multiple of ``resolution``).
    resolution : int
        Width of the fine bins in bp. Default is 25.

    Returns
    -------
    index : numpy.ndarray
        int64 coarse-bin number of every position (0 .. n_bins - 1, in compendium order).
    bin_chrom, bin_start : numpy.ndarray
        Chromosome and genome-aligned start (``start // scale * scale``) of each coarse bin.

    Examples
    --------
    >>> chrom = np.array(["chr1"] * 4 + ["chr2"] * 2)
    >>> start = np.array([200, 225, 250, 275, 0, 25])
    >>> index, bin_chrom, bin_start = scale_index(chrom, start, 250)
    >>> index
    array([0, 0, 1, 1, 2, 2])
    >>> bin_chrom.tolist(), bin_start.tolist()
    (['chr1', 'chr1', 'chr2'], [0, 250, 0])
    """
    if scale % resolution:
        raise GenomeError(f"scale {scale} must be a multiple of the resolution {resolution}")
    start = np.asarray(start, dtype=np.int64)
    window = start // scale
    segment = segment_ids(chrom, start, resolution)
    new = np.ones(len(start), dtype=bool)
    if len(start) > 1:
        new[1:] = (segment[1:] != segment[:-1]) | (window[1:] != window[:-1])
    index = np.cumsum(new) - 1
    return index, np.asarray(chrom)[new], window[new] * scale


def region_bins(
    regions: BedLike, genome: GenomeLike, *, chroms=None, rule: str = "avocado"
) -> tuple[tuple[str, ...], tuple[int, ...], tuple[int, ...], dict[str, int]]:
    """The bins of a BED region set as ``(chrom, start, n_bins, sizes)`` per region, for
    :meth:`avocado_xr.genome.GenomeLayout.from_regions` (which documents the rules)."""
    if rule not in REGION_RULES:
        raise GenomeError(f"rule must be one of {REGION_RULES}, got {rule!r}")
    genome = genome_sizes(genome)
    keep = None if chroms is None else set(genome.select(chroms))
    table = read_bed(regions, line_numbers=True)
    source = bed_label(regions)
    res = RESOLUTION
    out_chrom, out_start, out_n = [], [], []
    taken: dict[str, list[tuple[int, int, str]]] = {}
    for chrom, start, end, line in table.itertuples(index=False):
        if keep is not None and chrom not in keep:
            continue
        label = f"{chrom}:{start}-{end} ({source} line {line})"
        if chrom not in genome.sizes:
            raise GenomeError(
                f"Region {label} is on {chrom!r}, which is not in genome {genome.name!r}; "
                "fix the BED file or the genome."
            )
        size = genome.sizes[chrom]
        if end <= start or start >= size:
            raise GenomeError(
                f"Region {label} is empty or outside {chrom} (size {size}); "
                "need 0 <= start < end and start < chromosome size."
            )
        if rule == "avocado":
            first, last = start // res - 1, end // res
        else:
            first, last = start // res, (end - 1) // res
        first, last = max(first, 0), min(last, (size - 1) // res)
        for other_first, other_last, other in taken.get(chrom, []):
            if first <= other_last and other_first <= last:
                raise GenomeError(
                    f"Regions {other} and {label} share 25-bp bins (rule={rule!r}); "
                    "merge them (bedtools merge) so each bin appears once."
                )
        taken.setdefault(chrom, []).append((first, last, label))
        out_chrom.append(chrom)
        out_start.append(first * res)
        out_n.append(last - first + 1)
    if not out_chrom:
        raise GenomeError("The region set selects no bins (is it empty, or filtered out?).")
    sizes = {c: genome.sizes[c] for c in out_chrom}
    return tuple(out_chrom), tuple(out_start), tuple(out_n), sizes
