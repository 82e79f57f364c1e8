"""bigWig in and out: manifests, a lazy reader, chromosome and file checks, ingest, export.

- :mod:`.manifest`: which file holds which (celltype, assay) experiment.
- :mod:`.reader`: 25-bp binning and the lazy, picklable :class:`BigWigArray`.
- :mod:`.chroms`: chromosome names and sizes of a file against the declared genome.
- :mod:`.integrity`: opening files and checking that one is complete.
- :mod:`.options`: :class:`IngestOptions`, every option of ingestion in one place.
- :mod:`.ingest`: :func:`ingest`, manifests into a zarr compendium, resumably.
- :mod:`.export`: :func:`to_bigwig`, tracks back to genome browsers.
"""

from .export import to_bigwig
from .ingest import IngestReport, ingest
from .manifest import read_manifest
from .options import IngestOptions
from .reader import BigWigArray, read_bigwig

__all__ = [
    "BigWigArray",
    "IngestOptions",
    "IngestReport",
    "ingest",
    "read_bigwig",
    "read_manifest",
    "to_bigwig",
]
