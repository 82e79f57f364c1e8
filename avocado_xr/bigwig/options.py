"""The options of bigWig ingestion: one frozen dataclass, the single source of every option.

:class:`IngestOptions` holds everything that decides the values :func:`avocado_xr.ingest`
stores (genome, positions, binning and missing-value policies, chunking). The store's
settings fingerprint, the record each Dask task receives, the recipe (YAML) keys and the
``avocado-xr ingest`` command-line options are all derived from its fields, so an option is
spelled once, here. Options that only steer a run (progress, scheduler, overwrite, cache)
are arguments of :func:`avocado_xr.ingest`.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ..assembly import GenomeLike
from ..bins import REGION_RULES
from ..exceptions import ConfigError
from ..variables import DEFAULT_POSITION_CHUNK
from .chroms import EXTRA_CHROMS, MISSING_CHROMS
from .reader import GAPS

__all__ = ["MISSING_POLICIES", "TRANSFORMS", "IngestOptions"]

#: how bins with no covered base are filled, before the transform (or a number)
MISSING_POLICIES = ("zero", "nan")
#: transforms applied after the missing-value policy
TRANSFORMS = ("arcsinh", "none")


def _parse_chroms(text: str) -> tuple[str, ...]:
    return tuple(c for c in text.split(",") if c)


def _parse_missing(text: str):
    if text in MISSING_POLICIES:
        return text
    try:
        return float(text)
    except ValueError:
        raise ConfigError(
            f"missing must be 'zero', 'nan' or a number, got {text!r} (e.g. missing='zero')."
        ) from None


def _parse_chrom_map(path: str) -> dict:
    """A two-column file: file chromosome name, genome name (``-`` or ``none``: ignore)."""
    if not Path(path).is_file():
        raise ConfigError(f"chrom_map file {path!r} does not exist.")
    out = {}
    for number, line in enumerate(Path(path).read_text().splitlines(), start=1):
        if line.strip() and not line.startswith("#"):
            fields = line.split()
            if len(fields) < 2:
                raise ConfigError(
                    f"{path}, line {number}: expected 'file_name genome_name', got {line!r}."
                )
            out[fields[0]] = None if fields[1] in ("-", "none", "None") else fields[1]
    return out


def _option(default, help: str, *, choices=None, parse=str, metavar=None):
    """A field with what the command line needs to offer it."""
    meta = {"help": help, "choices": choices, "parse": parse, "metavar": metavar}
    if isinstance(default, list | dict):
        return field(default_factory=lambda: type(default)(default), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class IngestOptions:
    """What decides the values of an ingested compendium.

    Parameters
    ----------
    genome : str, path, mapping or Genome
        The declared assembly: ``"hg19"``, ``"hg38"``, ``"dm3"``, a chrom-sizes file or a
        ``{chrom: size}`` mapping. Every file's chromosome sizes are checked against it.
    chroms : tuple of str, optional
        Chromosomes to ingest, in this order. Default: all of the genome's (or, with
        ``regions``, all of the regions').
    regions : path, DataFrame or iterable of (chrom, start, end), optional
        Restrict to a BED region set; positions follow the regions' order. With the ENCODE
        pilot BED and the default ``region_rule`` this is exactly the layout of
        :func:`avocado_xr.datasets.roadmap_pilot`.
    region_rule : {"avocado", "overlap"}
        Which bins a region gets (see :meth:`avocado_xr.genome.GenomeLayout.from_regions`).
        Default ``"avocado"``: bins overlapping ``[start - 25, end]``.
    missing : {"zero", "nan"} or float
        Missing-value policy for bins with no covered base, applied before the transform.
        ``"zero"`` (default, the paper's recipe) writes 0; ``"nan"`` keeps NaN (such a track
        breaks ``validate(check_values=True)``); a number writes that number.
    transform : {"arcsinh", "none"}
        Applied after the missing-value policy. Default ``"arcsinh"`` (the paper's recipe,
        for -log10 p signal). ``"none"`` (or None) stores the values as read.
    gaps : {"missing", "zero"}
        Uncovered bases are left out of a bin's mean (default) or count as 0; see
        :mod:`avocado_xr.bigwig.reader`.
    chrom_map : mapping, optional
        File chromosome name -> genome name, applied before the automatic ``chr``/``MT``
        rules (``None`` as a target ignores the file chromosome).
    extra_chroms : {"ignore", "error"}
        Policy for file chromosomes that are not in the genome. Default ``"ignore"``.
    missing_chroms : {"missing", "error"}
        Policy for ingested chromosomes absent from a file: read as uncovered (default,
        then ``missing`` applies) or fail that track.
    position_chunk : int
        Positions per zarr chunk and per task. Default is 131072 (2**17).

    Examples
    --------
    >>> opts = IngestOptions(genome="hg19", chroms=["chr2", "chr1"], transform=None)
    >>> opts.chroms, opts.transform
    (('chr2', 'chr1'), 'none')
    >>> opts.replace(missing="0.5").missing
    0.5
    """

    genome: GenomeLike = _option(None, "hg19, hg38, dm3, or a chrom-sizes file (required)")
    chroms: tuple[str, ...] | None = _option(
        None, "comma-separated chromosomes (default: all)", parse=_parse_chroms
    )
    regions: object = _option(None, "BED file restricting the positions")
    region_rule: str = _option(
        "avocado",
        "bins of a region: 'avocado' = bins overlapping [start-25, end] (default; the pilot "
        "layout), 'overlap' = bins overlapping [start, end)",
        choices=REGION_RULES,
    )
    missing: str | float = _option(
        "zero",
        "value for bins with no covered base: zero (default, the paper), nan, or a number",
        parse=_parse_missing,
    )
    transform: str = _option(
        "arcsinh", "applied after --missing (default arcsinh)", choices=TRANSFORMS
    )
    gaps: str = _option(
        "missing",
        "uncovered bases inside a bin: left out of the mean (default) or counted as 0",
        choices=GAPS,
    )
    chrom_map: tuple[tuple[str, str | None], ...] = _option(
        (),
        "two-column file: file chromosome name, genome name (applied before chr/MT rules)",
        parse=_parse_chrom_map,
        metavar="FILE",
    )
    extra_chroms: str = _option("ignore", "default ignore", choices=EXTRA_CHROMS)
    missing_chroms: str = _option("missing", "default missing", choices=MISSING_CHROMS)
    position_chunk: int = _option(
        DEFAULT_POSITION_CHUNK, "positions per chunk (default 131072)", parse=int
    )

    def __post_init__(self):
        def put(name, value):
            object.__setattr__(self, name, value)

        if self.genome is None:
            raise ConfigError("genome is required: pass genome='hg19' (or another assembly).")
        if isinstance(self.chroms, str):
            put("chroms", _parse_chroms(self.chroms))
        elif self.chroms is not None:
            put("chroms", tuple(str(c) for c in self.chroms))
        if isinstance(self.regions, os.PathLike):
            put("regions", os.fspath(self.regions))
        if self.transform is None or self.transform == "identity":
            put("transform", "none")
        if isinstance(self.missing, str):
            put("missing", _parse_missing(self.missing))
        elif isinstance(self.missing, bool) or not isinstance(self.missing, int | float):
            raise ConfigError(f"missing must be 'zero', 'nan' or a number, got {self.missing!r}")
        else:
            put("missing", float(self.missing))
        chrom_map = self.chrom_map
        if isinstance(chrom_map, str | os.PathLike):
            chrom_map = _parse_chrom_map(os.fspath(chrom_map))
        if isinstance(chrom_map, Mapping):
            chrom_map = chrom_map.items()
        put("chrom_map", tuple(sorted((str(k), v) for k, v in (chrom_map or ()))))
        if int(self.position_chunk) != self.position_chunk or int(self.position_chunk) < 1:
            raise ConfigError(
                f"position_chunk must be a positive integer, got {self.position_chunk!r}"
            )
        put("position_chunk", int(self.position_chunk))
        for option in dataclasses.fields(self):
            choices = option.metadata.get("choices")
            value = getattr(self, option.name)
            if choices and value not in choices:
                raise ConfigError(f"{option.name} must be one of {choices}, got {value!r}")

    def replace(self, **changes) -> IngestOptions:
        """A copy with some options changed (unknown names raise :class:`ConfigError`)."""
        unknown = sorted(set(changes) - set(self.names()))
        if unknown:
            raise ConfigError(
                f"Unknown ingest option(s) {unknown}; the options are {self.names()}."
            )
        return dataclasses.replace(self, **changes)

    @classmethod
    def names(cls) -> list[str]:
        """The option names, in order."""
        return [f.name for f in dataclasses.fields(cls)]

    def fingerprint(self) -> dict:
        """The options as JSON-able values, for the store's settings record (``genome``,
        ``chroms``, ``regions`` and ``region_rule`` are recorded by what they resolve to: the
        chromosome sizes and the layout)."""
        out = {}
        for name in self.names():
            if name in ("genome", "chroms", "regions", "region_rule"):
                continue
            value = getattr(self, name)
            out[name] = dict(value) if name == "chrom_map" else value
        return out
