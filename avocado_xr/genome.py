"""Genomic positions: the layout of the ``position`` axis, multi-scale bins and intervals.

Positions of a compendium are 25-bp bins listed chromosome by chromosome (or region by
region). A run of contiguous bins on one chromosome is a *segment*; :class:`GenomeLayout`
describes the axis as its segments (a few numbers per segment, whatever the number of
positions), and is the one layout type of the package: made from coordinates, whole
chromosomes of an assembly or a BED region set; used by training, imputation, ingest, export,
the datasets and the autoencoder.

Avocado also learns factors at 250 bp and 5 kbp; :meth:`GenomeLayout.scale_index` maps every 25-bp
position to its coarse bin so that a coarse bin never straddles a chromosome or a gap between
regions: a coarse bin is the set of positions of one segment that fall in the same
genome-aligned window of ``scale`` bp.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .assembly import GenomeLike, genome_sizes
from .bed import BedLike
from .bins import region_bins, scale_index, segment_runs
from .exceptions import GenomeError, RegionError
from .names import RESOLUTION

__all__ = ["COARSE_SCALES", "GenomeLayout"]

#: bp widths of the genome factor scales, finest first
COARSE_SCALES = (25, 250, 5000)


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
        chrom, start, n_bins, sizes = region_bins(regions, genome, chroms=chroms, rule=rule)
        return cls(chrom, start, n_bins, RESOLUTION, _sizes_tuple(sizes))

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

    def segment_at(self, positions) -> np.ndarray:
        """Segment number of the given position indices (O(len(positions) log segments)).

        Examples
        --------
        >>> GenomeLayout.from_genome({"chr1": 260, "chr2": 50}).segment_at([0, 10, 11]).tolist()
        [0, 0, 1]
        """
        return np.searchsorted(self.offsets, np.asarray(positions), side="right") - 1

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
        segment = self.segment_at(positions)
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
        segment = self.segment_at(positions)
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
