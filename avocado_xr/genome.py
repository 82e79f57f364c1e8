"""Genomic positions: the layout of the ``position`` axis, multi-scale bins and intervals.

Positions of a compendium are 25-bp bins listed chromosome by chromosome (or region by
region). A run of contiguous bins on one chromosome is a *segment*; :class:`GenomeLayout`
describes the axis as its segments (a few numbers per segment, whatever the number of
positions), and is the one layout type of the package: made from coordinates, whole
chromosomes of an assembly or a BED region set; used by training, imputation, ingest, export,
the datasets and the autoencoder.

Avocado also learns factors at 250 bp and 5 kbp; :func:`scale_index` maps every 25-bp
position to its coarse bin so that a coarse bin never straddles a chromosome or a gap between
regions: a coarse bin is the set of positions of one segment that fall in the same
genome-aligned window of ``scale`` bp.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .assembly import GenomeLike, genome_sizes
from .bed import BedLike, bed_label, read_bed
from .exceptions import GenomeError, RegionError
from .variables import RESOLUTION

__all__ = [
    "COARSE_SCALES",
    "REGION_RULES",
    "GenomeLayout",
    "chrom_labels",
    "parse_region",
    "scale_index",
    "segment_ids",
    "segment_runs",
]

#: bp widths of the genome factor scales, finest first
COARSE_SCALES = (25, 250, 5000)
#: which bins a BED region gets (see :meth:`GenomeLayout.from_regions`)
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


@dataclass(frozen=True)
class GenomeLayout:
    """The positions of a compendium as runs of contiguous bins (segments).

    A layout rebuilds ``chrom`` and ``start`` of every position, splits a range of positions
    into per-segment reads, gives the coarse-bin indices, maps the positions of another
    Dataset onto its own, and serialises to a small JSON dict. It is what a trained model
    remembers of its genome axis and what ingest writes.

    Parameters
    ----------
    chrom : tuple of str
        Chromosome of each segment.
    start : tuple of int
        0-based start (bp) of each segment's first bin (a multiple of ``resolution``).
    n_bins : tuple of int
        Number of bins in each segment.
    resolution : int
        bp per bin. Default is 25.
    chrom_sizes : tuple of (str, int), optional
        Size of each chromosome of the layout, when known (reads stop at a chromosome's end;
        its last bin may be shorter than ``resolution``).

    Examples
    --------
    >>> layout = GenomeLayout.from_coords(np.array(["c1"] * 3 + ["c2"] * 2),
    ...                                   np.array([0, 25, 50, 500, 525]))
    >>> layout.n_positions, layout.to_dict()["n_bins"]
    (5, [3, 2])
    >>> layout.locate(np.array(["c2", "c1"]), np.array([525, 25])).tolist()
    [4, 1]
    >>> whole = GenomeLayout.from_genome({"chr1": 260, "chr2": 50})
    >>> whole.n_bins, whole.coords()[1][9:12].tolist()
    ((11, 2), [225, 250, 0])
    """

    chrom: tuple[str, ...]
    start: tuple[int, ...]
    n_bins: tuple[int, ...]
    resolution: int = RESOLUTION
    chrom_sizes: tuple[tuple[str, int], ...] | None = None

    def __post_init__(self):
        """Canonical form: segments are maximal runs (contiguous neighbours are merged), so
        equal positions give equal layouts however they were built or sliced."""
        chrom, start, n_bins = [], [], []
        for c, s, n in zip(self.chrom, self.start, self.n_bins, strict=True):
            if n <= 0:
                continue
            if chrom and chrom[-1] == c and start[-1] + n_bins[-1] * self.resolution == s:
                n_bins[-1] += int(n)
            else:
                chrom.append(str(c))
                start.append(int(s))
                n_bins.append(int(n))
        if len(chrom) != len(self.chrom):
            object.__setattr__(self, "chrom", tuple(chrom))
            object.__setattr__(self, "start", tuple(start))
            object.__setattr__(self, "n_bins", tuple(n_bins))

    # ------------------------------------------------------------------ constructors

    @classmethod
    def from_coords(
        cls, chrom, start, resolution: int = RESOLUTION, chrom_sizes=None
    ) -> GenomeLayout:
        """The layout of explicit ``chrom``/``start`` coordinates (one pass over them)."""
        chrom = np.asarray(chrom)
        start = np.asarray(start, dtype=np.int64)
        if len(chrom) != len(start) or len(start) == 0:
            raise RegionError("chrom and start must be non-empty and of equal length")
        if np.any(start % resolution):
            bad = int(np.flatnonzero(start % resolution)[0])
            raise RegionError(
                f"Position {bad} ({chrom[bad]}:{start[bad]}) does not start on a "
                f"{resolution}-bp boundary; bins must be genome-aligned."
            )
        first, n_bins = segment_runs(chrom, start, resolution)
        return cls(
            tuple(str(c) for c in chrom[first]),
            tuple(int(s) for s in start[first]),
            tuple(int(n) for n in n_bins),
            int(resolution),
            _sizes_tuple(chrom_sizes),
        )

    @classmethod
    def from_genome(cls, genome: GenomeLike, chroms=None) -> GenomeLayout:
        """Whole chromosomes, in ``chroms`` order (default: the genome's order).

        A chromosome of ``L`` bp has ``ceil(L / 25)`` bins starting at 0; the last may be
        shorter than 25 bp.
        """
        genome = genome_sizes(genome)
        chroms = genome.select(chroms)
        n = [-(-genome.sizes[c] // RESOLUTION) for c in chroms]
        sizes = {c: genome.sizes[c] for c in chroms}
        return cls(tuple(chroms), (0,) * len(chroms), tuple(n), RESOLUTION, _sizes_tuple(sizes))

    @classmethod
    def from_regions(
        cls, regions: BedLike, genome: GenomeLike, *, chroms=None, rule: str = "avocado"
    ) -> GenomeLayout:
        """The bins of a BED region set, region by region in the order given.

        Parameters
        ----------
        regions : path, DataFrame or iterable of (chrom, start, end)
            A BED file (0-based half-open; extra columns and ``#``/``track`` lines are
            ignored), a DataFrame with ``chrom``, ``start``, ``end`` columns, or tuples.
        genome : str, path, mapping or Genome
            The assembly (see :func:`avocado_xr.assembly.genome_sizes`).
        chroms : list of str, optional
            Keep only regions on these chromosomes.
        rule : {"avocado", "overlap"}
            Which bins a region ``[s, e)`` gets. ``"avocado"`` (default): bins
            ``s // 25 - 1`` through ``e // 25`` inclusive, i.e. the bins overlapping
            ``[s - 25, e]`` (one flanking bin on the left and the bin holding base ``e``):
            ``e // 25 - s // 25 + 2`` bins, the layout of the original Avocado's ENCODE pilot
            data (:func:`avocado_xr.datasets.roadmap_pilot`). ``"overlap"``: the bins
            overlapping ``[s, e)``. Bins are clipped to the chromosome.

        Examples
        --------
        >>> lay = GenomeLayout.from_regions([("chr1", 100, 160)], {"chr1": 1000})
        >>> lay.start, lay.n_bins
        ((75,), (4,))
        >>> GenomeLayout.from_regions([("chr1", 100, 160)], {"chr1": 1000},
        ...                           rule="overlap").n_bins
        (3,)
        """
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
        return cls(tuple(out_chrom), tuple(out_start), tuple(out_n), res, _sizes_tuple(sizes))

    # ------------------------------------------------------------------ properties

    @property
    def n_positions(self) -> int:
        return int(sum(self.n_bins))

    @property
    def offsets(self) -> np.ndarray:
        """First position index of each segment."""
        return np.r_[0, np.cumsum(self.n_bins, dtype=np.int64)[:-1]].astype(np.int64)

    @property
    def sizes(self) -> dict[str, int] | None:
        """Chromosome name -> size in bp, when the layout knows them."""
        return None if self.chrom_sizes is None else dict(self.chrom_sizes)

    # ------------------------------------------------------------------ positions

    def coords(self) -> tuple[np.ndarray, np.ndarray]:
        """``chrom`` (object array of shared strings) and ``start`` (int64) of every position."""
        names = {c: c for c in self.chrom}  # one string object per chromosome
        chrom = np.repeat(np.asarray([names[c] for c in self.chrom], dtype=object), self.n_bins)
        within = np.arange(self.n_positions) - np.repeat(self.offsets, self.n_bins)
        start = np.repeat(np.asarray(self.start, dtype=np.int64), self.n_bins)
        return chrom, start + within * self.resolution

    def pieces(self, lo: int, hi: int) -> list[tuple[str, int, int, int, int | None]]:
        """Split positions ``[lo, hi)`` into per-segment reads.

        Returns ``(chrom, bp_start, n_bins, out_offset, chrom_size)`` tuples, where
        ``out_offset`` is relative to ``lo`` and ``chrom_size`` is None when unknown.

        Examples
        --------
        >>> GenomeLayout.from_genome({"chr1": 260, "chr2": 50}).pieces(9, 12)
        [('chr1', 225, 2, 0, 260), ('chr2', 0, 1, 2, 50)]
        """
        out = []
        sizes = self.sizes or {}
        for c, s, n, off in zip(self.chrom, self.start, self.n_bins, self.offsets, strict=True):
            a, b = max(lo, int(off)), min(hi, int(off) + n)
            if a < b:
                out.append((c, s + (a - int(off)) * self.resolution, b - a, a - lo, sizes.get(c)))
        return out

    def check(self) -> GenomeLayout:
        """Check the compendium rules in O(segments): bins at or after 0, increasing and
        unique within a chromosome, and each chromosome's positions contiguous along
        ``position``. Returns the layout.

        Raises
        ------
        DimensionError
            The rule broken and where, with how to fix it.
        """
        from .exceptions import DimensionError

        seen: dict[str, int] = {}
        previous = None
        for k, (c, s, n) in enumerate(zip(self.chrom, self.start, self.n_bins, strict=True)):
            if s < 0:
                raise DimensionError(
                    f"A bin starts at {c}:{s}; bin starts are 0-based bp, so they must be >= 0."
                )
            if c in seen and seen[c] != k - 1:
                raise DimensionError(
                    f"The positions of {c} are not contiguous along 'position' (it appears "
                    "again after another chromosome); sort with ds.sortby(['chrom', 'start'])."
                )
            if previous is not None and previous[0] == c and s < previous[1]:
                raise DimensionError(
                    f"Bins on {c} go from {previous[1] - self.resolution} to {s}: starts must "
                    "strictly increase within a chromosome (no duplicates); sort with "
                    "ds.sortby(['chrom', 'start']) or drop the duplicates."
                )
            seen[c] = k
            previous = (c, s + n * self.resolution)
        return self

    def coords_at(self, positions) -> tuple[np.ndarray, np.ndarray]:
        """``chrom`` and ``start`` of the given position indices (O(len(positions) log
        segments), no pass over the whole layout).

        Examples
        --------
        >>> lay = GenomeLayout.from_genome({"chr1": 260, "chr2": 50})
        >>> chrom, start = lay.coords_at([10, 11, 0])
        >>> chrom.tolist(), start.tolist()
        (['chr1', 'chr2', 'chr1'], [250, 0, 0])
        """
        positions = np.asarray(positions, dtype=np.int64)
        if positions.size and (positions.min() < 0 or positions.max() >= self.n_positions):
            raise RegionError(
                f"Position indices must lie in [0, {self.n_positions}), got "
                f"[{int(positions.min())}, {int(positions.max())}]."
            )
        segment = np.searchsorted(self.offsets, positions, side="right") - 1
        names = {c: c for c in self.chrom}  # one string object per chromosome
        chrom = np.asarray([names[c] for c in self.chrom], dtype=object)[segment]
        start = np.asarray(self.start, dtype=np.int64)[segment]
        return chrom, start + (positions - self.offsets[segment]) * self.resolution

    def subset(self, lo: int, hi: int) -> GenomeLayout:
        """The layout of positions ``[lo, hi)`` (O(segments)).

        Examples
        --------
        >>> GenomeLayout.from_genome({"chr1": 260, "chr2": 50}).subset(9, 13).n_bins
        (2, 2)
        """
        lo, hi = max(int(lo), 0), min(int(hi), self.n_positions)
        if hi <= lo:
            raise RegionError(f"The position range [{lo}, {hi}) is empty.")
        pieces = self.pieces(lo, hi)
        return GenomeLayout(
            tuple(p[0] for p in pieces),
            tuple(p[1] for p in pieces),
            tuple(p[2] for p in pieces),
            self.resolution,
            self._sizes_of(p[0] for p in pieces),
        )

    def concat(self, other: GenomeLayout) -> GenomeLayout:
        """This layout followed by ``other`` (O(segments))."""
        if other.resolution != self.resolution:
            raise RegionError("Cannot join layouts of different resolutions.")
        sizes = {**(self.sizes or {}), **(other.sizes or {})}
        return GenomeLayout(
            self.chrom + other.chrom,
            self.start + other.start,
            self.n_bins + other.n_bins,
            self.resolution,
            _sizes_tuple(sizes) if self.chrom_sizes or other.chrom_sizes else None,
        )

    def intervals(self) -> list[tuple[str, int, int]]:
        """The segments as BED intervals ``(chrom, start, end)`` (bp, 0-based half-open).

        Examples
        --------
        >>> GenomeLayout.from_genome({"chr1": 260, "chr2": 50}).intervals()
        [('chr1', 0, 275), ('chr2', 0, 50)]
        """
        res = self.resolution
        return [
            (c, s, s + n * res) for c, s, n in zip(self.chrom, self.start, self.n_bins, strict=True)
        ]

    def chromosome(self, chrom: str) -> tuple[int, GenomeLayout]:
        """The first position of ``chrom`` and the layout of its positions (a chromosome's
        positions are contiguous along ``position``; O(segments)).

        Examples
        --------
        >>> first, sub = GenomeLayout.from_genome({"chr1": 260, "chr2": 50}).chromosome("chr2")
        >>> first, sub.n_positions
        (11, 2)
        """
        segments = [k for k, c in enumerate(self.chrom) if c == chrom]
        if not segments:
            raise RegionError(
                f"Chromosome {chrom!r} is not in the layout ({sorted(set(self.chrom))})."
            )
        lo = int(self.offsets[segments[0]])
        hi = int(self.offsets[segments[-1]]) + self.n_bins[segments[-1]]
        return lo, self.subset(lo, hi)

    def interval(self, chrom: str, start: int, end: int) -> list[tuple[int, int]]:
        """Position ranges ``[lo, hi)`` of the bins overlapping ``chrom:start-end`` (bp,
        0-based half-open), one per segment hit, in position order (O(segments)).

        Examples
        --------
        >>> lay = GenomeLayout.from_genome({"chr1": 260, "chr2": 50})
        >>> lay.interval("chr1", 30, 80), lay.interval("chr2", 0, 10**6)
        ([(1, 4)], [(11, 13)])
        """
        out = []
        res = self.resolution
        for c, s, n, off in zip(self.chrom, self.start, self.n_bins, self.offsets, strict=True):
            if c != chrom:
                continue
            first = max(0, (start - s) // res)
            last = min(n, -(-(end - s) // res))
            if first < last:
                out.append((int(off) + first, int(off) + last))
        return out

    def _sizes_of(self, chroms) -> tuple | None:
        if self.chrom_sizes is None:
            return None
        sizes = self.sizes
        return _sizes_tuple({c: sizes[c] for c in chroms})

    def scale_bins(self, scale: int) -> tuple[np.ndarray, np.ndarray]:
        """Per segment: the first genome-aligned window of ``scale`` bp it touches, and the
        number of the first coarse bin of the segment (O(segments)). A segment's bins are
        contiguous, so it touches every window between its first and last.

        Examples
        --------
        >>> lay = GenomeLayout.from_coords(["c1"] * 12 + ["c2"] * 2, [*range(200, 500, 25), 0, 25])
        >>> lay.scale_bins(250), lay.n_scale_bins(250)
        ((array([0, 0]), array([0, 2])), 3)
        """
        if scale % self.resolution:
            raise GenomeError(f"scale {scale} must be a multiple of the resolution")
        start = np.asarray(self.start, dtype=np.int64)
        last = start + (np.asarray(self.n_bins, dtype=np.int64) - 1) * self.resolution
        first, n = start // scale, last // scale - start // scale + 1
        return first, np.r_[0, np.cumsum(n)[:-1]].astype(np.int64)

    def coarse(self, scale: int) -> GenomeLayout:
        """The coarse bins of ``scale`` bp as a layout of resolution ``scale``: bin ``k`` of
        :meth:`scale_index` is position ``k`` of the result (a window shared by two segments
        appears twice, as two bins).

        Examples
        --------
        >>> GenomeLayout.from_genome({"chr1": 260, "chr2": 50}).coarse(250).n_bins
        (2, 1)
        """
        first, _ = self.scale_bins(scale)
        start = np.asarray(self.start, dtype=np.int64)
        last = (start + (np.asarray(self.n_bins) - 1) * self.resolution) // scale
        return GenomeLayout(
            self.chrom,
            tuple(int(f) * scale for f in first),
            tuple(int(n) for n in last - first + 1),
            scale,
        )

    def n_scale_bins(self, scale: int) -> int:
        """Number of coarse bins of ``scale`` bp (O(segments))."""
        start = np.asarray(self.start, dtype=np.int64)
        last = start + (np.asarray(self.n_bins, dtype=np.int64) - 1) * self.resolution
        return int((last // scale - start // scale + 1).sum())

    def scale_index_at(self, scale: int, positions) -> np.ndarray:
        """Coarse-bin number of the given positions; the same numbers as
        :meth:`scale_index`, computed from the segments (O(len(positions) log segments)).

        Examples
        --------
        >>> lay = GenomeLayout.from_coords(["c1"] * 12 + ["c2"] * 2, [*range(200, 500, 25), 0, 25])
        >>> lay.scale_index_at(250, [0, 2, 11, 12]).tolist()
        [0, 1, 1, 2]
        >>> lay.scale_index(250)[0][[0, 2, 11, 12]].tolist()
        [0, 1, 1, 2]
        """
        positions = np.asarray(positions, dtype=np.int64)
        segment = np.searchsorted(self.offsets, positions, side="right") - 1
        first, bin_offset = self.scale_bins(scale)
        start = np.asarray(self.start, dtype=np.int64)[segment]
        bp = start + (positions - self.offsets[segment]) * self.resolution
        return bin_offset[segment] + bp // scale - first[segment]

    def scale_index(self, scale: int):
        """:func:`scale_index` of this layout's positions."""
        chrom, start = self.coords()
        return scale_index(chrom, start, scale, self.resolution)

    def locate(self, chrom, start) -> np.ndarray:
        """Index of each (chrom, start) bin among this layout's positions.

        Raises
        ------
        RegionError
            A bin is not one of the layout's positions (the message names the first).
        """
        chrom = np.asarray(chrom)
        start = np.asarray(start, dtype=np.int64)
        out = np.full(len(start), -1, dtype=np.int64)
        offsets = self.offsets
        seg_chrom = np.asarray(self.chrom)
        seg_start = np.asarray(self.start, dtype=np.int64)
        seg_end = seg_start + np.asarray(self.n_bins) * self.resolution
        codes, names = pd.factorize(chrom, sort=False)
        for code, name in enumerate(names):
            hit = np.flatnonzero(codes == code)
            segs = np.flatnonzero(seg_chrom == str(name))
            if not len(segs):
                continue
            order = segs[np.argsort(seg_start[segs])]
            k = np.searchsorted(seg_start[order], start[hit], side="right") - 1
            seg = order[np.clip(k, 0, None)]
            ok = (k >= 0) & (start[hit] < seg_end[seg])
            ok &= (start[hit] - seg_start[seg]) % self.resolution == 0
            out[hit[ok]] = (
                offsets[seg[ok]] + (start[hit[ok]] - seg_start[seg[ok]]) // self.resolution
            )
        if np.any(out < 0):
            bad = int(np.flatnonzero(out < 0)[0])
            raise RegionError(
                f"Bin {chrom[bad]}:{start[bad]} is not among the model's positions; a model "
                "imputes only the positions it was trained on (fit genome factors for new "
                "positions first)."
            )
        return out

    # ------------------------------------------------------------------ serialisation

    def to_dict(self) -> dict:
        out = {
            "chrom": list(self.chrom),
            "start": list(self.start),
            "n_bins": list(self.n_bins),
            "resolution": self.resolution,
        }
        if self.chrom_sizes is not None:
            out["chrom_sizes"] = dict(self.chrom_sizes)
        return out

    @classmethod
    def from_dict(cls, values: dict) -> GenomeLayout:
        return cls(
            tuple(str(c) for c in values["chrom"]),
            tuple(int(v) for v in values["start"]),
            tuple(int(v) for v in values["n_bins"]),
            int(values["resolution"]),
            _sizes_tuple(values.get("chrom_sizes")),
        )

    def token(self) -> str:
        """A short digest identifying the layout (stable across processes)."""
        text = repr((self.chrom, self.start, self.n_bins, self.resolution, self.chrom_sizes))
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def _sizes_tuple(sizes) -> tuple[tuple[str, int], ...] | None:
    if sizes is None:
        return None
    return tuple((str(c), int(s)) for c, s in dict(sizes).items())
