"""Every exception and warning avocado_xr raises.

Each error the package raises on bad input derives from :class:`AvocadoXrError`, so a caller
can catch them all at once; each also keeps the built-in base a caller would expect
(``ValueError`` for bad values, ``KeyError`` for unknown names, ``OSError`` for files), so
``except ValueError`` still works. Messages name the offending celltype, assay, chromosome,
file or option and say how to fix the input. Warnings derive from :class:`AvocadoXrWarning`.

Examples
--------
>>> import avocado_xr as ax
>>> ds = ax.testing.simulate_compendium(n_positions=500, seed=0)
>>> try:
...     ax.mask(ds, [("nope", "A0")])
... except ax.AvocadoXrError as err:
...     print(type(err).__name__, "|", err)
UnknownCelltypeError | Unknown celltype ['nope']; the known celltypes are ['C0', 'C1', 'C2', 'C3'].
"""

from __future__ import annotations

__all__ = [
    "AnnotationError",
    "AutoencoderError",
    "AvocadoXrError",
    "AvocadoXrWarning",
    "BigWigReadError",
    "CheckpointError",
    "ChromSizeError",
    "ChromosomeError",
    "ChunkingError",
    "ConfigError",
    "DataNotFoundError",
    "DimensionError",
    "ExportError",
    "GenomeError",
    "IngestError",
    "IngestWarning",
    "InvalidSignalError",
    "ManifestError",
    "MetricError",
    "ModelFileError",
    "RegionError",
    "StoreError",
    "UnknownAssayError",
    "UnknownCelltypeError",
]


class AvocadoXrError(Exception):
    """Base class of every error raised by avocado_xr."""


class AvocadoXrWarning(UserWarning):
    """Something works but probably not as the user intended."""


# --------------------------------------------------------------------- the data contract


class DimensionError(AvocadoXrError, ValueError):
    """A variable is missing, or has the wrong dimensions or dtype."""


class _NamedKeyError(AvocadoXrError, KeyError):
    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


class UnknownCelltypeError(_NamedKeyError):
    """A cell type name is not in the compendium or the model."""


class UnknownAssayError(_NamedKeyError):
    """An assay name is not in the compendium or the model."""


class InvalidSignalError(AvocadoXrError, ValueError):
    """Signal values break the contract (NaN inside an observed track, values in a hidden one)."""


class RegionError(AvocadoXrError, ValueError):
    """A genomic interval cannot be parsed or is not covered by the compendium."""


class GenomeError(AvocadoXrError, ValueError):
    """An unknown assembly name, a bad chrom-sizes table, or a region outside the genome."""


class ChunkingError(AvocadoXrError, ValueError):
    """Dask chunks do not fit what a blockwise operation needs."""


class StoreError(AvocadoXrError, OSError):
    """A zarr store is missing, or exists where a new one should be written."""


class DataNotFoundError(AvocadoXrError, FileNotFoundError):
    """A data set's files are neither at the given path nor downloadable."""


# --------------------------------------------------------------------- models


class ConfigError(AvocadoXrError, ValueError):
    """A hyperparameter or option has a value outside its allowed range."""


class ModelFileError(AvocadoXrError, OSError):
    """A saved model directory is missing files or does not match the package's format."""


class CheckpointError(AvocadoXrError, OSError):
    """A training checkpoint is unreadable or belongs to another run."""


# --------------------------------------------------------------------- bigWig in and out


class ManifestError(AvocadoXrError, ValueError):
    """A manifest is malformed: missing columns, duplicate pairs, bad paths or checksums."""


class BigWigReadError(AvocadoXrError, OSError):
    """A file is not a readable bigWig (missing, truncated, another format, unreadable data)."""


class ChromosomeError(AvocadoXrError, ValueError):
    """A file's chromosomes do not match the declared genome (names, extra or missing ones)."""


class ChromSizeError(ChromosomeError):
    """A chromosome's size in a file differs from its size in the declared genome."""


class IngestError(AvocadoXrError):
    """Ingestion cannot start or finish (incompatible existing store, failed tracks)."""


class IngestWarning(AvocadoXrWarning):
    """Some tracks failed to ingest; the others are complete (see the report)."""


class ExportError(AvocadoXrError, ValueError):
    """Tracks cannot be written as bigWig (bad coordinates, unknown chromosome, file exists)."""


# --------------------------------------------------------------------- evaluation


class MetricError(AvocadoXrError, ValueError):
    """Inputs to a measure are inconsistent (lengths, NaN, unknown measure names)."""


class AnnotationError(AvocadoXrError, ValueError):
    """A BED file or interval table is malformed or does not match the compendium."""


class AutoencoderError(AvocadoXrError, ValueError):
    """The data or the settings do not allow fitting or applying the autoencoder."""
