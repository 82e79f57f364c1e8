"""Exceptions raised by avocado_xr.

Every error the package raises on bad input is a subclass of :class:`AvocadoXrError`, so a
caller can catch them all at once; each message names the offending celltype, assay,
chromosome or variable and says how to fix the input.
"""

from __future__ import annotations

__all__ = [
    "AvocadoXrError",
    "ChunkingError",
    "DimensionError",
    "InvalidSignalError",
    "ModelFileError",
    "RegionError",
    "StoreError",
    "UnknownAssayError",
    "UnknownCelltypeError",
]


class AvocadoXrError(Exception):
    """Base class of every error raised by avocado_xr."""


class DimensionError(AvocadoXrError):
    """A variable is missing, or has the wrong dimensions or dtype."""


class UnknownCelltypeError(AvocadoXrError, KeyError):
    """A cell type name is not in the compendium or the model."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


class UnknownAssayError(AvocadoXrError, KeyError):
    """An assay name is not in the compendium or the model."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class InvalidSignalError(AvocadoXrError, ValueError):
    """Signal values break the contract (NaN inside an observed track, values in a hidden one)."""


class RegionError(AvocadoXrError, ValueError):
    """A genomic interval cannot be parsed or is not covered by the compendium."""


class ChunkingError(AvocadoXrError, ValueError):
    """Dask chunks do not fit what a blockwise operation needs."""


class StoreError(AvocadoXrError, OSError):
    """A zarr store is missing, or exists where a new one should be written."""


class ModelFileError(AvocadoXrError, OSError):
    """A saved model directory is missing files or does not match the package's format."""
