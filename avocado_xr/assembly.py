"""Genome assemblies: chromosome sizes of a declared genome.

``hg19``, ``hg38`` and ``dm3`` ship with the package; any ``chrom<TAB>size`` file or
``{chrom: size}`` mapping works too. A :class:`Genome` is what bigWig ingest checks files
against and what bigWig export writes into file headers.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np

from .exceptions import GenomeError

__all__ = ["KNOWN_GENOMES", "Genome", "GenomeLike", "genome_sizes", "package_data"]

#: assemblies whose chromosome sizes ship with the package
KNOWN_GENOMES = ("hg19", "hg38", "dm3")


def package_data(name: str) -> Path:
    """Path of a file shipped in ``avocado_xr/data``."""
    return Path(str(resources.files("avocado_xr") / "data" / name))


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

    def select(self, chroms: Iterable[str] | str | None) -> list[str]:
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


GenomeLike = str | os.PathLike | Mapping[str, int] | Genome


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


def genome_sizes(genome: GenomeLike) -> Genome:
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
    avocado_xr.exceptions.GenomeError: Unknown genome 'hg37': ...
    """
    if isinstance(genome, Genome):
        return genome
    if isinstance(genome, Mapping):
        return Genome("custom", {str(k): int(v) for k, v in genome.items()})
    text = os.fspath(genome)
    if text in KNOWN_GENOMES:
        return Genome(text, _read_sizes(package_data(f"chromsizes.{text}.tsv")))
    path = Path(text)
    if path.is_file():
        return Genome(path.name.split(".")[0], _read_sizes(path))
    raise GenomeError(
        f"Unknown genome {text!r}: pass one of {list(KNOWN_GENOMES)} or the path of a "
        "chrom-sizes file ('chrom<TAB>size' per line, e.g. from UCSC fetchChromSizes)."
    )
