"""The names of the compendium contract's dimensions and variables, and its bin size
(DESIGN.md, section 1). A leaf module: everything may import it; it imports nothing.
:mod:`avocado_xr.variables` re-exports these names beside the validation of the contract.
"""

__all__ = [
    "CHROM",
    "DEFAULT_POSITION_CHUNK",
    "DIM_ASSAY",
    "DIM_CELLTYPE",
    "DIM_POSITION",
    "IMPUTED",
    "OBSERVED",
    "RESOLUTION",
    "SIGNAL",
    "START",
]

DIM_CELLTYPE = "celltype"
DIM_ASSAY = "assay"
DIM_POSITION = "position"
SIGNAL = "signal"
OBSERVED = "observed"
IMPUTED = "imputed"
CHROM = "chrom"
START = "start"
#: bp per bin of the ``position`` axis
RESOLUTION = 25
#: positions per zarr chunk and per Dask block: 2**17 bins (3.3 Mbp, 512 KiB of float32)
DEFAULT_POSITION_CHUNK = 2**17
