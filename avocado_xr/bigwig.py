"""Read bigWig files as 25-bp binned tracks: genomes, position layouts and a lazy reader.

Three pieces, each usable on its own:

- :class:`Genome` and :func:`genome_sizes`: the chromosome sizes of a declared assembly
  (``hg19``, ``hg38`` and ``dm3`` ship with the package; any ``chrom<TAB>size`` file works).
- :class:`Layout`: which 25-bp bins make up the ``position`` axis, either whole chromosomes
  (:meth:`Layout.from_genome`) or a BED region set (:meth:`Layout.from_regions`).
- :class:`BigWigArray` and :func:`read_bigwig`: a picklable, lazily evaluated view of one
  bigWig on a layout. It stores the path, never a pyBigWig handle, and opens the file inside
  each read, so Dask can ship it to any worker.

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
left to the caller's missing-value policy (see :func:`avocado_xr.ingest.ingest`).

Chromosome names
----------------
A file's chromosome names are matched to the genome's by, in order: an explicit
``chrom_map`` (file name -> genome name); the identical name; the name with the ``chr``
prefix added or removed, with ``M``/``MT``/``chrMT`` all meaning the mitochondrial genome
(``chrM`` on UCSC genomes, ``MT`` on Ensembl-style ones). Every used chromosome's size must
equal the genome's, which catches files from another assembly.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np

from .exceptions import AvocadoXrError
from .variables import RESOLUTION

__all__ = [
    "BigWigArray",
    "BigWigReadError",
    "ChromosomeError",
    "ChromSizeError",
    "Genome",
    "GenomeError",
    "KNOWN_GENOMES",
    "Layout",
    "check_bigwig_file",
    "genome_sizes",
    "harmonise_chroms",
    "read_bigwig",
]

#: assemblies whose chromosome sizes ship with the package
KNOWN_GENOMES = ("hg19", "hg38", "dm3")

_GAPS = ("missing", "zero")
_RULES = ("avocado", "overlap")


class BigWigReadError(AvocadoXrError, OSError):
    """A file is not a readable bigWig (missing, truncated, another format, unreadable data)."""


class ChromosomeError(AvocadoXrError, ValueError):
    """A file's chromosomes do not match the declared genome (names, extra or missing ones)."""


class ChromSizeError(ChromosomeError):
    """A chromosome's size in a file differs from its size in the declared genome."""


class GenomeError(AvocadoXrError, ValueError):
    """An unknown assembly name, a bad chrom-sizes table, or a region outside the genome."""


# --------------------------------------------------------------------------------------
# genomes


@dataclass(frozen=True)
class Genome:
    """Chromosome sizes of an assembly, in the assembly's chromosome order.

    Parameters
    ----------
    name : str
        Assembly name, stored as the compendium's ``genome`` attribute.
    sizes : dict of str to int
        Chromosome name -> size in bp, in the order used for the position axis.

    Examples
    --------
    >>> g = genome_sizes("hg19")
    >>> g.name, len(g.sizes), g.sizes["chr22"]
    ('hg19', 25, 51304566)
    """

    name: str
    sizes: dict[str, int] = field(hash=False)

    def __post_init__(self):
        for chrom, size in self.sizes.items():
            if not isinstance(size, int | np.integer) or size <= 0:
                raise GenomeError(
                    f"Genome {self.name!r}: chromosome {chrom!r} has size {size!r}; sizes must "
                    "be positive integers."
                )

    def select(self, chroms: Iterable[str] | None) -> list[str]:
        """Return ``chroms`` (default: all) after checking they belong to the genome."""
        if chroms is None:
            return list(self.sizes)
        chroms = [chroms] if isinstance(chroms, str) else [str(c) for c in chroms]
        unknown = [c for c in chroms if c not in self.sizes]
        if unknown:
            raise GenomeError(
                f"Chromosomes {unknown} are not in genome {self.name!r} "
                f"(which has {list(self.sizes)}); check the spelling or the genome."
            )
        if len(set(chroms)) != len(chroms):
            raise GenomeError(f"Chromosomes {chroms} are listed more than once.")
        return chroms


def _read_sizes(path: Path) -> dict[str, int]:
    sizes: dict[str, int] = {}
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip() or line.startswith("#"):
            continue
        fields = line.split()
        if len(fields) < 2 or not fields[1].isdigit():
            raise GenomeError(f"{path}, line {number}: expected 'chrom<TAB>size', got {line!r}.")
        if fields[0] in sizes:
            raise GenomeError(f"{path}, line {number}: chromosome {fields[0]!r} is repeated.")
        sizes[fields[0]] = int(fields[1])
    if not sizes:
        raise GenomeError(f"{path} lists no chromosomes.")
    return sizes


def genome_sizes(genome: str | os.PathLike | Mapping[str, int] | Genome) -> Genome:
    """Resolve a genome declaration to a :class:`Genome`.

    Parameters
    ----------
    genome : str, path, mapping or Genome
        A packaged assembly name (``"hg19"``, ``"hg38"``, ``"dm3"``: chr1-22, X, Y, M for
        human, all 15 sequences for dm3), the path of a ``chrom<TAB>size`` file (the name is
        the file stem, e.g. ``mm10`` for ``mm10.chrom.sizes``), or a ``{chrom: size}``
        mapping (named ``"custom"``).

    Examples
    --------
    >>> genome_sizes("dm3").sizes["chrX"]
    22422827
    >>> genome_sizes({"chr1": 1000}).name
    'custom'
    >>> genome_sizes("hg37")
    Traceback (most recent call last):
    ...
    avocado_xr.bigwig.GenomeError: Unknown genome 'hg37': ...
    """
    if isinstance(genome, Genome):
        return genome
    if isinstance(genome, Mapping):
        return Genome("custom", {str(k): int(v) for k, v in genome.items()})
    text = os.fspath(genome)
    if text in KNOWN_GENOMES:
        ref = resources.files("avocado_xr") / "data" / f"chromsizes.{text}.tsv"
        return Genome(text, _read_sizes(Path(str(ref))))
    path = Path(text)
    if path.is_file():
        return Genome(path.name.split(".")[0], _read_sizes(path))
    raise GenomeError(
        f"Unknown genome {text!r}: pass one of {list(KNOWN_GENOMES)} or the path of a "
        "chrom-sizes file ('chrom<TAB>size' per line, e.g. from UCSC fetchChromSizes)."
    )


# --------------------------------------------------------------------------------------
# layouts


@dataclass(frozen=True)
class Layout:
    """The 25-bp bins of a ``position`` axis: runs of contiguous bins ("segments").

    Parameters
    ----------
    chroms : tuple of str
        Chromosome of each segment.
    starts : tuple of int
        0-based start (bp) of each segment's first bin (a multiple of 25).
    n_bins : tuple of int
        Number of bins in each segment.
    sizes : tuple of int
        Size of each segment's chromosome (reads stop at the chromosome end).

    Examples
    --------
    >>> lay = Layout.from_genome({"chr1": 260, "chr2": 50})
    >>> lay.n_positions, lay.n_bins
    (13, (11, 2))
    >>> chrom, start = lay.coords()
    >>> start[9:12].tolist(), chrom[11]
    ([225, 250, 0], 'chr2')
    """

    chroms: tuple[str, ...]
    starts: tuple[int, ...]
    n_bins: tuple[int, ...]
    sizes: tuple[int, ...]
    resolution: int = RESOLUTION

    @property
    def offsets(self) -> np.ndarray:
        """First position index of each segment."""
        return np.concatenate([[0], np.cumsum(self.n_bins, dtype=np.int64)[:-1]]).astype(np.int64)

    @property
    def n_positions(self) -> int:
        return int(sum(self.n_bins))

    @classmethod
    def from_genome(
        cls, genome: str | os.PathLike | Mapping[str, int] | Genome, chroms=None
    ) -> Layout:
        """Whole chromosomes, in ``chroms`` order (default: the genome's order).

        A chromosome of ``L`` bp has ``ceil(L / 25)`` bins starting at 0; the last may be
        shorter than 25 bp.
        """
        genome = genome_sizes(genome)
        chroms = genome.select(chroms)
        sizes = [genome.sizes[c] for c in chroms]
        n = [-(-size // RESOLUTION) for size in sizes]
        return cls(tuple(chroms), (0,) * len(chroms), tuple(n), tuple(sizes))

    @classmethod
    def from_regions(
        cls,
        regions,
        genome: str | os.PathLike | Mapping[str, int] | Genome,
        *,
        chroms=None,
        rule: str = "avocado",
    ) -> Layout:
        """The bins of a BED region set, region by region in the order given.

        Parameters
        ----------
        regions : path, DataFrame or iterable of (chrom, start, end)
            A BED file (0-based half-open; extra columns and ``#``/``track`` lines are
            ignored), a DataFrame with ``chrom``, ``start``, ``end`` columns, or tuples.
        genome : str, path, mapping or Genome
            The assembly (see :func:`genome_sizes`).
        chroms : list of str, optional
            Keep only regions on these chromosomes.
        rule : {"avocado", "overlap"}
            Which bins a region ``[s, e)`` gets. ``"avocado"`` (default): bins
            ``s // 25 - 1`` through ``e // 25`` inclusive, i.e. the bins overlapping
            ``[s - 25, e]`` (one flanking bin on the left and the bin holding base ``e``):
            ``e // 25 - s // 25 + 2`` bins, the layout of the original Avocado's ENCODE pilot
            data (``avocado_xr.datasets.roadmap_pilot``). ``"overlap"``: the bins
            overlapping ``[s, e)``. Bins are clipped to the chromosome.

        Examples
        --------
        >>> lay = Layout.from_regions([("chr1", 100, 160)], {"chr1": 1000})
        >>> lay.starts, lay.n_bins
        ((75,), (4,))
        >>> Layout.from_regions([("chr1", 100, 160)], {"chr1": 1000}, rule="overlap").n_bins
        (3,)
        """
        if rule not in _RULES:
            raise ValueError(f"rule must be one of {_RULES}, got {rule!r}")
        genome = genome_sizes(genome)
        keep = None if chroms is None else set(genome.select(chroms))
        out_chroms, out_starts, out_n, out_sizes = [], [], [], []
        taken: dict[str, list[tuple[int, int, str]]] = {}
        for chrom, start, end, label in _iter_regions(regions):
            if keep is not None and chrom not in keep:
                continue
            if chrom not in genome.sizes:
                raise GenomeError(
                    f"Region {label} is on {chrom!r}, which is not in genome {genome.name!r}; "
                    "fix the BED file or the genome."
                )
            size = genome.sizes[chrom]
            if start < 0 or end <= start or start >= size:
                raise GenomeError(
                    f"Region {label} is empty or outside {chrom} (size {size}); "
                    "need 0 <= start < end and start < chromosome size."
                )
            if rule == "avocado":
                first, last = start // RESOLUTION - 1, end // RESOLUTION
            else:
                first, last = start // RESOLUTION, (end - 1) // RESOLUTION
            first, last = max(first, 0), min(last, (size - 1) // RESOLUTION)
            for other_first, other_last, other in taken.get(chrom, []):
                if first <= other_last and other_first <= last:
                    raise GenomeError(
                        f"Regions {other} and {label} share 25-bp bins (rule={rule!r}); "
                        "merge them (bedtools merge) so each bin appears once."
                    )
            taken.setdefault(chrom, []).append((first, last, label))
            out_chroms.append(chrom)
            out_starts.append(first * RESOLUTION)
            out_n.append(last - first + 1)
            out_sizes.append(size)
        if not out_chroms:
            raise GenomeError("The region set selects no bins (is it empty, or filtered out?).")
        return cls(tuple(out_chroms), tuple(out_starts), tuple(out_n), tuple(out_sizes))

    def coords(self) -> tuple[np.ndarray, np.ndarray]:
        """``chrom`` (object) and ``start`` (int64) of every position."""
        chrom = np.empty(self.n_positions, dtype=object)
        start = np.empty(self.n_positions, dtype=np.int64)
        for c, s, n, off in zip(self.chroms, self.starts, self.n_bins, self.offsets, strict=True):
            chrom[off : off + n] = c
            start[off : off + n] = s + self.resolution * np.arange(n, dtype=np.int64)
        return chrom, start

    def pieces(self, lo: int, hi: int) -> list[tuple[str, int, int, int, int]]:
        """Split positions ``[lo, hi)`` into per-segment reads.

        Returns ``(chrom, bp_start, n_bins, out_offset, chrom_size)`` tuples, where
        ``out_offset`` is relative to ``lo``.
        """
        out = []
        offsets = self.offsets
        for c, s, n, off, size in zip(
            self.chroms, self.starts, self.n_bins, offsets, self.sizes, strict=True
        ):
            a, b = max(lo, int(off)), min(hi, int(off) + n)
            if a < b:
                out.append((c, s + (a - int(off)) * self.resolution, b - a, a - lo, size))
        return out

    def token(self) -> str:
        """A short digest identifying the layout (stable across processes)."""
        import hashlib

        text = repr((self.chroms, self.starts, self.n_bins, self.sizes, self.resolution))
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def _iter_regions(regions):
    if isinstance(regions, str | os.PathLike):
        path = Path(regions)
        if not path.is_file():
            raise GenomeError(f"Region file {str(path)!r} does not exist.")
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            if not line.strip() or line.startswith(("#", "track", "browser")):
                continue
            fields = line.split("\t") if "\t" in line else line.split()
            try:
                chrom, start, end = fields[0], int(fields[1]), int(fields[2])
            except (IndexError, ValueError) as err:
                raise GenomeError(
                    f"{path}, line {number}: not a BED line (chrom, start, end): {line!r}."
                ) from err
            yield chrom, start, end, f"{chrom}:{start}-{end} ({path.name} line {number})"
        return
    if hasattr(regions, "itertuples"):
        regions = regions[["chrom", "start", "end"]].itertuples(index=False)
    for row in regions:
        chrom, start, end = str(row[0]), int(row[1]), int(row[2])
        yield chrom, start, end, f"{chrom}:{start}-{end}"


# --------------------------------------------------------------------------------------
# chromosome names


def _chrom_key(name: str) -> str:
    key = name[3:] if name.lower().startswith("chr") else name
    return "M" if key.upper() in ("M", "MT") else key


def harmonise_chroms(
    file_chroms: Mapping[str, int],
    genome: Genome,
    *,
    chrom_map: Mapping[str, str] | None = None,
    path: str = "<bigWig>",
) -> dict[str, str]:
    """Match a file's chromosome names to the genome's.

    Parameters
    ----------
    file_chroms : mapping of str to int
        The file's chromosome sizes (``pyBigWig.open(path).chroms()``).
    genome : Genome
        The declared assembly.
    chrom_map : mapping of str to str, optional
        Explicit file name -> genome name pairs; they take precedence over the automatic
        ``chr``-prefix and ``M``/``MT`` rules. Map a name to ``None`` to ignore it.
    path : str
        File name used in error messages.

    Returns
    -------
    dict
        Genome chromosome -> file chromosome, for every file chromosome that matched;
        file chromosomes that match nothing (e.g. ``chrUn_gl000220``) are left out.

    Raises
    ------
    ChromosomeError
        Two file chromosomes match the same genome chromosome.

    Examples
    --------
    >>> g = genome_sizes("dm3")
    >>> harmonise_chroms({"X": 22422827, "2L": 23011544, "MT": 19517}, g)
    {'chrX': 'X', 'chr2L': '2L', 'chrM': 'MT'}
    """
    chrom_map = dict(chrom_map or {})
    by_key: dict[str, str] = {}
    for name in genome.sizes:
        by_key.setdefault(_chrom_key(name), name)
    out: dict[str, str] = {}
    for name in file_chroms:
        if name in chrom_map:
            target = chrom_map[name]
            if target is None:
                continue
            if target not in genome.sizes:
                raise ChromosomeError(
                    f"chrom_map sends {name!r} of {path} to {target!r}, which is not in genome "
                    f"{genome.name!r}; genome chromosomes are {list(genome.sizes)}."
                )
        elif name in genome.sizes:
            target = name
        else:
            target = by_key.get(_chrom_key(name))
            if target is None:
                continue
        if target in out:
            raise ChromosomeError(
                f"{path}: chromosomes {out[target]!r} and {name!r} both match {target!r} of "
                f"genome {genome.name!r}; pass chrom_map={{{name!r}: None}} (or the right "
                "target) to say which one to use."
            )
        out[target] = name
    return out


# --------------------------------------------------------------------------------------
# file checks


_BIGWIG_MAGIC = 0x888FFC26
_BIGBED_MAGIC = 0x8789F2EB
_RTREE_MAGIC = 0x2468ACE0


def check_bigwig_file(path: str | os.PathLike) -> None:
    """Check that ``path`` is a complete bigWig file, without decoding its data.

    Checks the header magic, the end marker (bigWig writers end the file with the magic
    number again), and walks every R-tree index (full resolution and zoom levels), checking
    that each node and each data block it points to lies inside the file. This catches
    truncated downloads, which pyBigWig may otherwise open (when only zoom levels are cut
    off) or reject with an unspecific error.

    Raises
    ------
    BigWigReadError
        The file is missing, is not a bigWig (e.g. a bigBed or a bedGraph), or is truncated;
        the message names the file and the reason.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise BigWigReadError(f"{path}: no such file; check the manifest path.")
    size = os.path.getsize(path)
    with open(path, "rb") as fh:
        head = fh.read(64)
        if len(head) < 64:
            raise BigWigReadError(f"{path}: not a bigWig file (only {size} bytes).")
        (magic,) = struct.unpack("<I", head[:4])
        endian = "<"
        if magic != _BIGWIG_MAGIC and struct.unpack(">I", head[:4])[0] == _BIGWIG_MAGIC:
            endian = ">"
        elif magic != _BIGWIG_MAGIC:
            kind = (
                "a bigBed"
                if _BIGBED_MAGIC in struct.unpack("<I", head[:4]) + struct.unpack(">I", head[:4])
                else "not a bigWig"
            )
            raise BigWigReadError(
                f"{path}: {kind} file (magic {head[:4].hex()}); the manifest must list bigWig "
                "signal files (convert bedGraph with UCSC bedGraphToBigWig)."
            )
        fields = struct.unpack(endian + "IHHQQQHHQQIQ", head)
        n_zoom, chrom_tree, full_data, full_index = fields[2], fields[3], fields[4], fields[5]
        for name, offset in (("chromosome tree", chrom_tree), ("data", full_data)):
            if not 0 < offset < size:
                raise BigWigReadError(
                    f"{path}: truncated or corrupt ({name} offset {offset} is beyond the "
                    f"file's {size} bytes); download it again."
                )
        fh.seek(size - 4)
        if fh.read(4) != head[:4]:
            raise BigWigReadError(
                f"{path}: truncated (the file does not end with the bigWig end marker that "
                "bigWig writers append last); download or regenerate it."
            )
        indexes = [("full-resolution index", full_index)] if full_index else []
        fh.seek(64)
        zooms = fh.read(24 * n_zoom)
        if len(zooms) < 24 * n_zoom:
            raise BigWigReadError(f"{path}: truncated inside the zoom-level headers.")
        for level in range(n_zoom):
            _, _, _, zoom_index = struct.unpack(
                endian + "IIQQ", zooms[24 * level : 24 * level + 24]
            )
            if zoom_index:
                indexes.append((f"zoom level {level + 1} index", zoom_index))
        for name, offset in indexes:
            _walk_rtree(fh, path, size, offset, endian, name)


def _walk_rtree(fh, path: str, size: int, offset: int, endian: str, name: str) -> None:
    def fail(what: str):
        raise BigWigReadError(
            f"{path}: truncated or corrupt ({name}: {what}; the file has {size} bytes); "
            "download it again or regenerate it."
        )

    if not 0 < offset < size:
        fail(f"starts at byte {offset}")
    fh.seek(offset)
    header = fh.read(48)
    if len(header) < 48:
        fail("header cut off")
    if struct.unpack(endian + "I", header[:4])[0] != _RTREE_MAGIC:
        fail("bad index magic")
    stack = [offset + 48]
    while stack:
        node = stack.pop()
        if node + 4 > size:
            fail(f"node at byte {node} is past the end")
        fh.seek(node)
        is_leaf, _, count = struct.unpack(endian + "BBH", fh.read(4))
        width = 32 if is_leaf else 24
        items = fh.read(width * count)
        if len(items) < width * count:
            fail(f"node at byte {node} is cut off")
        for k in range(count):
            item = items[width * k : width * (k + 1)]
            if is_leaf:
                data_offset, data_size = struct.unpack(endian + "QQ", item[16:32])
                if data_offset + data_size > size:
                    fail(f"data block at byte {data_offset} (+{data_size}) is past the end")
            else:
                (child,) = struct.unpack(endian + "Q", item[16:24])
                if child >= size:
                    fail(f"child node at byte {child} is past the end")
                stack.append(child)


def open_bigwig(path: str | os.PathLike):
    """Open a bigWig with pyBigWig, turning its errors into :class:`BigWigReadError`."""
    try:
        import pyBigWig
    except ImportError as err:  # pragma: no cover - a dev dependency
        raise ImportError(
            "Reading bigWig files needs pyBigWig: pip install 'avocado-xr[bigwig]'"
        ) from err
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise BigWigReadError(f"{path}: no such file; check the manifest path.")
    try:
        bw = pyBigWig.open(path)
    except RuntimeError as err:
        raise BigWigReadError(
            f"{path}: pyBigWig cannot open it ({err}); is it a complete bigWig file?"
        ) from err
    if bw is None or not bw.isBigWig():
        if bw is not None:
            bw.close()
        raise BigWigReadError(f"{path}: not a bigWig file (pyBigWig reads no bigWig header).")
    return bw


def check_chroms(
    file_chroms: Mapping[str, int],
    genome: Genome,
    used: Iterable[str],
    *,
    chrom_map: Mapping[str, str] | None = None,
    extra_chroms: str = "ignore",
    missing_chroms: str = "missing",
    path: str = "<bigWig>",
) -> dict[str, str]:
    """Harmonise names and validate sizes; return genome -> file chromosome for ``used``.

    Parameters
    ----------
    file_chroms : mapping of str to int
        The file's chromosome sizes.
    genome : Genome
        The declared assembly.
    used : iterable of str
        Genome chromosomes the layout reads.
    chrom_map : mapping, optional
        See :func:`harmonise_chroms`.
    extra_chroms : {"ignore", "error"}
        File chromosomes that match no genome chromosome (e.g. ``chrUn_*`` contigs).
        Default ``"ignore"``.
    missing_chroms : {"missing", "error"}
        Used genome chromosomes absent from the file: ``"missing"`` (default) reads them as
        uncovered (NaN before the missing-value policy), ``"error"`` refuses the file.
    path : str
        File name for messages.

    Raises
    ------
    ChromSizeError
        A used chromosome's size differs from the genome's (another assembly?).
    ChromosomeError
        Extra or missing chromosomes under the ``"error"`` policies, or ambiguous names.
    """
    if extra_chroms not in ("ignore", "error"):
        raise ValueError(f"extra_chroms must be 'ignore' or 'error', got {extra_chroms!r}")
    if missing_chroms not in ("missing", "error"):
        raise ValueError(f"missing_chroms must be 'missing' or 'error', got {missing_chroms!r}")
    matched = harmonise_chroms(file_chroms, genome, chrom_map=chrom_map, path=path)
    if extra_chroms == "error":
        extra = sorted(set(file_chroms) - set(matched.values()))
        if extra:
            raise ChromosomeError(
                f"{path} has chromosomes {extra} that are not in genome {genome.name!r}; pass "
                "extra_chroms='ignore' to skip them or chrom_map={...} to rename them."
            )
    used = list(dict.fromkeys(used))
    missing = [c for c in used if c not in matched]
    if missing and missing_chroms == "error":
        raise ChromosomeError(
            f"{path} has no chromosome {missing} (its chromosomes are {list(file_chroms)}); "
            "pass missing_chroms='missing' to read them as uncovered, or chrom_map={...} if "
            "they are named differently."
        )
    for chrom in used:
        if chrom in matched:
            have, want = int(file_chroms[matched[chrom]]), genome.sizes[chrom]
            if have != want:
                guess = _guess_genome(file_chroms, matched)
                hint = f" The sizes match {guess}." if guess else ""
                raise ChromSizeError(
                    f"{path}: chromosome {matched[chrom]!r} is {have:,} bp but {chrom} of "
                    f"genome {genome.name!r} is {want:,} bp; the file is from another "
                    f"assembly.{hint} Pass the right genome=, or lift the file over."
                )
    return {c: matched[c] for c in used if c in matched}


def _guess_genome(file_chroms: Mapping[str, int], matched: Mapping[str, str]) -> str | None:
    for name in KNOWN_GENOMES:
        sizes = genome_sizes(name).sizes
        if all(sizes.get(g) == file_chroms[f] for g, f in matched.items()):
            return f"genome={name!r}"
    return None


# --------------------------------------------------------------------------------------
# binning and the lazy reader


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
    if gaps not in _GAPS:
        raise ValueError(f"gaps must be one of {_GAPS}, got {gaps!r}")
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
    """A lazy, picklable 1-D array: one bigWig binned at 25 bp on a :class:`Layout`.

    It implements ``shape``, ``dtype``, ``ndim`` and ``__getitem__`` for
    :func:`dask.array.from_array`. Only the path and small metadata are stored; the file is
    opened inside each read (pyBigWig handles cannot be pickled).

    Parameters
    ----------
    path : str or path
        A local bigWig file.
    layout : Layout
        The positions to read.
    chroms : dict of str to str
        Genome chromosome -> file chromosome (from :func:`check_chroms`); genome chromosomes
        not in it read as uncovered.
    gaps : {"missing", "zero"}
        How uncovered bases enter the bin mean (see the module notes).

    Examples
    --------
    >>> import pickle
    >>> lay = Layout.from_genome({"chr1": 100})
    >>> arr = BigWigArray("track.bw", lay, {"chr1": "chr1"})
    >>> arr.shape, arr.dtype, pickle.loads(pickle.dumps(arr)).path
    ((4,), dtype('float32'), 'track.bw')
    """

    ndim = 1
    dtype = np.dtype(np.float32)

    def __init__(self, path, layout: Layout, chroms: Mapping[str, str], gaps: str = "missing"):
        if gaps not in _GAPS:
            raise ValueError(f"gaps must be one of {_GAPS}, got {gaps!r}")
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


def _layout_for(genome: Genome, chroms, regions, rule: str) -> Layout:
    if regions is not None:
        return Layout.from_regions(regions, genome, chroms=chroms, rule=rule)
    return Layout.from_genome(genome, chroms)


def read_bigwig(
    path: str | os.PathLike,
    *,
    genome: str | os.PathLike | Mapping[str, int] | Genome,
    chroms: Iterable[str] | None = None,
    regions=None,
    region_rule: str = "avocado",
    chrom_map: Mapping[str, str] | None = None,
    extra_chroms: str = "ignore",
    missing_chroms: str = "missing",
    gaps: str = "missing",
    chunks: int = 2**17,
):
    """Open one bigWig lazily as a 25-bp binned DataArray on ``position``.

    Values are the raw bin means (see the module notes), NaN where no base is covered;
    no missing-value policy or transform is applied here (:func:`avocado_xr.ingest.ingest`
    does that).

    Parameters
    ----------
    path : str or path
        A local bigWig file.
    genome : str, path, mapping or Genome
        The declared assembly (see :func:`genome_sizes`); sizes are checked.
    chroms : list of str, optional
        Genome chromosomes to read (default: all, or all of ``regions``).
    regions : path, DataFrame or iterable, optional
        A BED region set (see :meth:`Layout.from_regions`).
    region_rule : {"avocado", "overlap"}
        Bins of a region; see :meth:`Layout.from_regions`. Default ``"avocado"``.
    chrom_map, extra_chroms, missing_chroms
        Chromosome policies; see :func:`check_chroms`.
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
    >>> trk = ax.bigwig.read_bigwig("E003-H3K4me3.bw", genome="hg19",  # doctest: +SKIP
    ...                             regions="pilot.bed")
    >>> trk.sel(position=slice(0, 10)).values  # doctest: +SKIP
    """
    import dask.array as da
    import xarray as xr
    from dask.base import tokenize

    genome = genome_sizes(genome)
    layout = _layout_for(genome, chroms, regions, region_rule)
    path = os.fspath(path)
    check_bigwig_file(path)
    bw = open_bigwig(path)
    try:
        file_chroms = dict(bw.chroms())
    finally:
        bw.close()
    matched = check_chroms(
        file_chroms,
        genome,
        layout.chroms,
        chrom_map=chrom_map,
        extra_chroms=extra_chroms,
        missing_chroms=missing_chroms,
        path=path,
    )
    array = BigWigArray(path, layout, matched, gaps)
    stat = os.stat(path)
    name = "bigwig-" + tokenize(path, stat.st_mtime_ns, stat.st_size, layout.token(), matched, gaps)
    data = da.from_array(array, chunks=(chunks,), asarray=False, name=name, meta=np.empty(0, "f4"))
    chrom, start = layout.coords()
    return xr.DataArray(
        data,
        dims=("position",),
        coords={"chrom": ("position", chrom), "start": ("position", start)},
        name=Path(path).name,
        attrs={"resolution": RESOLUTION, "genome": genome.name, "source": path, "gaps": gaps},
    )
