"""Chromosome names and sizes of a bigWig file against a declared genome.

A file's chromosome names are matched to the genome's by, in order: an explicit
``chrom_map`` (file name -> genome name); the identical name; the name with the ``chr``
prefix added or removed, with ``M``/``MT``/``chrMT`` all meaning the mitochondrial genome
(``chrM`` on UCSC genomes, ``MT`` on Ensembl-style ones). Every used chromosome's size must
equal the genome's, which catches files from another assembly; and a file must share at least
one chromosome with the positions read, or it would give an all-empty track (a dm3 file read
on hg19 regions, or an hg38 chr17 file read where the positions lack chr17). A file that
covers only some of the chromosomes read (e.g. chr22 alone, on all of hg19) is fine: the
others read as uncovered.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from ..assembly import KNOWN_GENOMES, Genome, genome_sizes
from ..exceptions import ChromosomeError, ChromSizeError, ConfigError

__all__ = ["EXTRA_CHROMS", "MISSING_CHROMS", "check_chroms", "harmonise_chroms"]

#: policies for file chromosomes that are not in the genome
EXTRA_CHROMS = ("ignore", "error")
#: policies for genome chromosomes that a file lacks
MISSING_CHROMS = ("missing", "error")


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
        A used chromosome's size differs from the genome's (another assembly?); or the file
        shares no used chromosome and the sizes of the genome chromosomes it has differ.
    ChromosomeError
        The file has none of the used chromosomes; extra or missing chromosomes under the
        ``"error"`` policies; ambiguous names.
    """
    if extra_chroms not in EXTRA_CHROMS:
        raise ConfigError(f"extra_chroms must be one of {EXTRA_CHROMS}, got {extra_chroms!r}")
    if missing_chroms not in MISSING_CHROMS:
        raise ConfigError(f"missing_chroms must be one of {MISSING_CHROMS}, got {missing_chroms!r}")
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
                guess = _guess_genome(file_chroms, chrom_map)
                hint = f" The sizes match {guess}." if guess else ""
                raise ChromSizeError(
                    f"{path}: chromosome {matched[chrom]!r} is {have:,} bp but {chrom} of "
                    f"genome {genome.name!r} is {want:,} bp; the file is from another "
                    f"assembly.{hint} Pass the right genome=, or lift the file over."
                )
    shared = {c: matched[c] for c in used if c in matched}
    if used and not shared:
        _no_shared_chromosome(file_chroms, genome, used, matched, chrom_map, path)
    return shared


def _no_shared_chromosome(file_chroms, genome, used, matched, chrom_map, path: str):
    """Raise the error for a file that has none of the chromosomes read."""
    listed = ", ".join(f"{name} ({int(size):,} bp)" for name, size in list(file_chroms.items())[:8])
    more = f" and {len(file_chroms) - 8} more" if len(file_chroms) > 8 else ""
    wanted = ", ".join(used[:8]) + (f" and {len(used) - 8} more" if len(used) > 8 else "")
    guess = _guess_genome(file_chroms, chrom_map)
    clash = [c for c, f in matched.items() if int(file_chroms[f]) != genome.sizes[c]]
    if clash or (guess and guess != f"genome={genome.name!r}"):
        why = "the file is from another assembly" + (
            f" (its chromosome sizes match {guess})" if guess else ""
        )
        fix = f"pass {guess} with positions on that assembly" if guess else "pass its genome="
        error = ChromSizeError if clash else ChromosomeError
    else:
        why = "it would read as an all-empty track"
        error, fix = ChromosomeError, "pass regions= or chroms= that include its chromosomes"
    raise error(
        f"{path} shares no chromosome with the positions read on genome {genome.name!r} "
        f"({wanted}): the file has {listed}{more}; {why}. To ingest it, {fix}, or "
        "chrom_map={...} if its chromosomes are named differently."
    )


def _guess_genome(file_chroms: Mapping[str, int], chrom_map=None) -> str | None:
    """``genome='name'`` of the packaged genome whose sizes the file's chromosomes match."""
    for name in KNOWN_GENOMES:
        genome = genome_sizes(name)
        try:
            matched = harmonise_chroms(file_chroms, genome, chrom_map=chrom_map)
        except ChromosomeError:
            continue
        if matched and all(genome.sizes[g] == int(file_chroms[f]) for g, f in matched.items()):
            return f"genome={name!r}"
    return None
