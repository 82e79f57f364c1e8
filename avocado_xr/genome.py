"""Genomic coordinates: multi-scale bin indices and interval parsing.

Positions of a compendium are 25-bp bins listed chromosome by chromosome (or region by
region). Avocado also learns factors at 250 bp and 5 kbp; :func:`scale_index` maps every
25-bp position to its coarse bin so that a coarse bin never straddles a chromosome or a gap
between regions: a coarse bin is the set of positions of one *segment* (a run of contiguous
bins on one chromosome) that fall in the same genome-aligned window of ``scale`` bp.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .exceptions import RegionError

__all__ = ["COARSE_SCALES", "GenomeLayout", "parse_region", "scale_index", "segment_ids"]

#: bp widths of the genome factor scales, finest first
COARSE_SCALES = (25, 250, 5000)

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
            raise RegionError(
                f"Cannot parse region {region!r}; write it as 'chr20:1,000,000-2,000,000' "
                "or pass (chrom, start, end)."
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


def _codes(chrom) -> np.ndarray:
    """Integer code per bin, equal for equal chromosome names (cheap comparisons)."""
    return pd.factorize(np.asarray(chrom), sort=False)[0]


def segment_ids(chrom: np.ndarray, start: np.ndarray, resolution: int = 25) -> np.ndarray:
    """Number the runs of contiguous bins: a new segment starts at a new chromosome or a gap.

    Examples
    --------
    >>> segment_ids(np.array(["c1", "c1", "c1", "c2"]), np.array([0, 25, 100, 0]))
    array([0, 0, 1, 2])
    """
    code = _codes(chrom)
    start = np.asarray(start, dtype=np.int64)
    new = np.ones(len(start), dtype=bool)
    if len(start) > 1:
        new[1:] = (code[1:] != code[:-1]) | (start[1:] != start[:-1] + resolution)
    return np.cumsum(new) - 1


def scale_index(
    chrom: np.ndarray, start: np.ndarray, scale: int, resolution: int = 25
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
        raise ValueError(f"scale {scale} must be a multiple of the resolution {resolution}")
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

    A layout is what a trained model remembers of its genome axis: it rebuilds ``chrom`` and
    ``start`` of every position, the coarse-bin indices, and maps the positions of another
    Dataset onto the model's (for imputing a region). It serialises to a small JSON dict.

    Examples
    --------
    >>> layout = GenomeLayout.from_coords(np.array(["c1"] * 3 + ["c2"] * 2),
    ...                                   np.array([0, 25, 50, 500, 525]))
    >>> layout.n_positions, layout.to_dict()["n_bins"]
    (5, [3, 2])
    >>> layout.locate(np.array(["c2", "c1"]), np.array([525, 25])).tolist()
    [4, 1]
    """

    chrom: tuple[str, ...]
    start: tuple[int, ...]
    n_bins: tuple[int, ...]
    resolution: int = 25

    @classmethod
    def from_coords(cls, chrom, start, resolution: int = 25) -> GenomeLayout:
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
        segment = segment_ids(chrom, start, resolution)
        first = np.flatnonzero(np.r_[True, segment[1:] != segment[:-1]])
        n_bins = np.diff(np.r_[first, len(start)])
        return cls(
            tuple(str(c) for c in chrom[first]),
            tuple(int(s) for s in start[first]),
            tuple(int(n) for n in n_bins),
            int(resolution),
        )

    @property
    def n_positions(self) -> int:
        return int(sum(self.n_bins))

    def coords(self) -> tuple[np.ndarray, np.ndarray]:
        """``chrom`` (object array) and ``start`` (int64) of every position."""
        chrom = np.repeat(np.asarray(self.chrom, dtype=object), self.n_bins)
        offsets = np.arange(self.n_positions) - np.repeat(
            np.cumsum(self.n_bins) - self.n_bins, self.n_bins
        )
        start = np.repeat(np.asarray(self.start, dtype=np.int64), self.n_bins)
        return chrom, start + offsets * self.resolution

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
        offsets = np.cumsum(self.n_bins) - self.n_bins
        seg_chrom = np.asarray(self.chrom)
        seg_start = np.asarray(self.start, dtype=np.int64)
        seg_end = seg_start + np.asarray(self.n_bins) * self.resolution
        codes, names = pd.factorize(chrom, sort=False)
        for code, name in enumerate(names):
            name = str(name)
            hit = np.flatnonzero(codes == code)
            segs = np.flatnonzero(seg_chrom == name)
            if len(segs):
                order = segs[np.argsort(seg_start[segs])]
                k = np.searchsorted(seg_start[order], start[hit], side="right") - 1
                ok = k >= 0
                seg = order[np.clip(k, 0, None)]
                ok &= (start[hit] < seg_end[seg]) & (
                    (start[hit] - seg_start[seg]) % self.resolution == 0
                )
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

    def to_dict(self) -> dict:
        return {
            "chrom": list(self.chrom),
            "start": list(self.start),
            "n_bins": list(self.n_bins),
            "resolution": self.resolution,
        }

    @classmethod
    def from_dict(cls, values: dict) -> GenomeLayout:
        return cls(
            tuple(values["chrom"]),
            tuple(int(v) for v in values["start"]),
            tuple(int(v) for v in values["n_bins"]),
            int(values["resolution"]),
        )
