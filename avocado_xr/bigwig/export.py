"""Write tracks (imputed or observed) to bigWig files for genome browsers.

:func:`to_bigwig` streams a ``(celltype, assay, position)`` DataArray block by block along
``position`` (each block computed once for all tracks, never the whole array) and writes one
bigWig per track with 25-bp records (fixed-step runs; NaN bins are left out), a chromosome
header from the genome's chromosome sizes, and, optionally, the inverse of the arcsinh
transform (back to -log10 p). Re-ingesting an exported file with
:func:`avocado_xr.ingest` gives back the same float32 values.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import xarray as xr

from .._progress import progress
from ..assembly import KNOWN_GENOMES, Genome, GenomeLike, genome_sizes
from ..bins import segment_runs
from ..exceptions import ExportError
from ..variables import (
    CHROM,
    DEFAULT_POSITION_CHUNK,
    DIM_ASSAY,
    DIM_CELLTYPE,
    DIM_POSITION,
    IMPUTED,
    OBSERVED,
    RESOLUTION,
    SIGNAL,
    START,
)

__all__ = ["to_bigwig"]


def _pick(data, variable: str | None):
    if isinstance(data, xr.DataArray):
        return data, None
    if not isinstance(data, xr.Dataset):
        raise ExportError(f"to_bigwig takes a DataArray or Dataset, got {type(data).__name__}")
    name = variable or (IMPUTED if IMPUTED in data else SIGNAL)
    if name not in data:
        raise ExportError(
            f"The Dataset has no variable {name!r}; pass variable= one of {list(data.data_vars)}."
        )
    observed = None
    if name == SIGNAL and OBSERVED in data:
        observed = data[OBSERVED].copy(data=np.asarray(data[OBSERVED].values))
    return data[name], observed


def _track_list(da: xr.DataArray, observed) -> list[tuple[str | None, str | None, dict]]:
    labels = []
    celltypes = da[DIM_CELLTYPE].values if DIM_CELLTYPE in da.dims else [None]
    assays = da[DIM_ASSAY].values if DIM_ASSAY in da.dims else [None]
    for c in celltypes:
        for a in assays:
            index = {}
            if c is not None:
                index[DIM_CELLTYPE] = c
            if a is not None:
                index[DIM_ASSAY] = a
            if observed is not None and index and not bool(observed.sel(index)):
                continue
            name_c = str(c) if c is not None else _scalar(da, DIM_CELLTYPE)
            name_a = str(a) if a is not None else _scalar(da, DIM_ASSAY)
            labels.append((name_c, name_a, index))
    return labels


def _scalar(da: xr.DataArray, name: str) -> str | None:
    if name in da.coords and da[name].ndim == 0:
        return str(da[name].values)
    return None


def _check_coords(chrom: np.ndarray, start: np.ndarray, genome: Genome) -> list[str]:
    """Validate coordinates; return the chromosomes in order of first appearance."""
    order = list(dict.fromkeys(chrom.tolist()))
    unknown = [c for c in order if c not in genome.sizes]
    if unknown:
        raise ExportError(
            f"Chromosomes {unknown} are not in genome {genome.name!r}; pass the right "
            "genome= (a name or a chrom-sizes file)."
        )
    if np.any(start % RESOLUTION):
        raise ExportError("Bin starts must be multiples of 25 bp for 25-bp bigWig records.")
    change = np.flatnonzero(chrom[1:] != chrom[:-1]) + 1
    if len(change) + 1 != len(order):
        raise ExportError(
            "Each chromosome's positions must be contiguous (bigWig files are sorted); sort "
            "with data.sortby(['chrom', 'start']) first."
        )
    same = chrom[1:] == chrom[:-1]
    if np.any(same & (start[1:] <= start[:-1])):
        raise ExportError(
            "Positions must increase within each chromosome (bigWig files are sorted); sort "
            "with data.sortby(['chrom', 'start']) first."
        )
    for c in order:
        last = start[chrom == c].max()
        if last >= genome.sizes[c]:
            raise ExportError(
                f"A bin starts at {c}:{last}, beyond the chromosome's {genome.sizes[c]:,} bp in "
                f"genome {genome.name!r}; is it the right genome?"
            )
    return order


def _export_genome(genome, attrs: dict) -> Genome:
    if genome is not None:
        return genome_sizes(genome)
    name = attrs.get("genome")
    if name is None or name == "unknown":
        raise ExportError("The data has no genome attribute; pass genome= for the header.")
    if attrs.get("chrom_sizes") and name not in KNOWN_GENOMES:  # recorded by ingest
        pairs = [item.rsplit("=", 1) for item in str(attrs["chrom_sizes"]).split(",")]
        return Genome(str(name), {c: int(size) for c, size in pairs})
    return genome_sizes(name)


def to_bigwig(
    data,
    path_or_dir: str | os.PathLike,
    *,
    genome: GenomeLike | None = None,
    inverse_transform: bool = False,
    variable: str | None = None,
    name_template: str = "{celltype}.{assay}.bigWig",
    block: int | None = None,
    max_open_files: int = 128,
    overwrite: bool = False,
    progress: bool = False,
) -> list[Path]:
    """Write tracks to bigWig files with 25-bp records, one file per track.

    Parameters
    ----------
    data : xarray.DataArray or xarray.Dataset
        Values on ``position`` with ``chrom`` and ``start`` coordinates, and optionally
        ``celltype`` and ``assay`` dimensions (NumPy- or Dask-backed). A Dataset gives its
        ``imputed`` variable, or its ``signal`` restricted to observed tracks (or
        ``variable``).
    path_or_dir : str or path
        Output folder (created if needed), or the output file when ``data`` holds a single
        track without ``celltype``/``assay`` dimensions.
    genome : str, path, mapping or Genome, optional
        Chromosome sizes for the header. Default: ``data.attrs["genome"]`` (with the
        ``chrom_sizes`` attribute that :func:`avocado_xr.ingest` records for genomes
        that are not packaged).
    inverse_transform : bool
        Write ``sinh(value)``, undoing the arcsinh transform (back to -log10 p).
        Default is False.
    variable : str, optional
        Which Dataset variable to write.
    name_template : str
        File name of a track, with ``{celltype}`` and ``{assay}`` fields. Default
        ``"{celltype}.{assay}.bigWig"``.
    block : int, optional
        Positions computed at a time. Default: the Dask chunk size along ``position``, or
        131072 for NumPy data.
    max_open_files : int
        Tracks written per pass over the data. Default is 128.
    overwrite : bool
        Replace existing files. Default is False (an existing file is an error).
    progress : bool
        Show a progress bar over blocks. Default is False.

    Returns
    -------
    list of pathlib.Path
        The files written, in track order.

    Examples
    --------
    >>> import tempfile, pyBigWig, avocado_xr as ax
    >>> from avocado_xr import to_bigwig
    >>> ds = ax.testing.simulate_compendium(n_celltypes=2, n_assays=2, n_positions=400, seed=0)
    >>> files = to_bigwig(ds, tempfile.mkdtemp(), genome={"chr1": 5_000, "chr2": 5_000})
    >>> bw = pyBigWig.open(str(files[0]))
    >>> bw.chroms(), bw.intervals("chr1", 0, 50)[0][:2]
    ({'chr1': 5000, 'chr2': 5000}, (0, 25))
    >>> bw.close()
    """
    if importlib.util.find_spec("pyBigWig") is None:  # pragma: no cover - a dev dependency
        raise ImportError("Writing bigWig files needs pyBigWig: pip install 'avocado-xr[bigwig]'")
    da, observed = _pick(data, variable)
    extra = [d for d in da.dims if d not in (DIM_CELLTYPE, DIM_ASSAY, DIM_POSITION)]
    if DIM_POSITION not in da.dims or extra:
        raise ExportError(
            f"to_bigwig needs dims among (celltype, assay, position), got {da.dims}; select "
            "the other dimensions first."
        )
    for name in (CHROM, START):
        if name not in da.coords:
            raise ExportError(f"The data has no {name!r} coordinate along 'position'.")
    attrs = {**(data.attrs if isinstance(data, xr.Dataset) else {}), **da.attrs}
    if inverse_transform and attrs.get("transform", "arcsinh") != "arcsinh":
        raise ExportError(
            f"inverse_transform=True undoes arcsinh, but the data's transform attribute is "
            f"{attrs['transform']!r}."
        )
    genome = _export_genome(genome, attrs)
    da = da.transpose(*[d for d in (DIM_CELLTYPE, DIM_ASSAY) if d in da.dims], DIM_POSITION)
    chrom = np.asarray(da[CHROM].values)
    chrom = chrom.astype(object).astype(str) if chrom.dtype.kind != "U" else chrom
    start = np.asarray(da[START].values).astype(np.int64)
    order = _check_coords(chrom, start, genome)
    header = [(c, genome.sizes[c]) for c in order] + [
        (c, s) for c, s in genome.sizes.items() if c not in order
    ]
    tracks = _track_list(da, observed)
    single = DIM_CELLTYPE not in da.dims and DIM_ASSAY not in da.dims
    out = Path(path_or_dir)
    try:
        if single:
            paths = [out]
            out.parent.mkdir(parents=True, exist_ok=True)
        else:
            out.mkdir(parents=True, exist_ok=True)
            paths = [out / name_template.format(celltype=c, assay=a) for c, a, _ in tracks]
    except OSError as err:
        raise ExportError(f"Cannot create the output folder {str(out)!r}: {err}") from err
    existing = [str(p) for p in paths if p.exists()]
    if existing and not overwrite:
        raise ExportError(f"{existing[:3]} already exist; pass overwrite=True to replace them.")
    if block is None:
        chunks = da.chunksizes.get(DIM_POSITION) if da.chunks is not None else None
        block = int(chunks[0]) if chunks else DEFAULT_POSITION_CHUNK
    export = _Export(da, header, genome.sizes, chrom, start, block, inverse_transform, progress)
    targets = [(path, selection) for path, (_, _, selection) in zip(paths, tracks, strict=True)]
    for first in range(0, len(targets), max_open_files):
        export.write(targets[first : first + max_open_files])
    return paths


@dataclass(frozen=True)
class _Export:
    """What every group of tracks is written with: the data, header, coordinates, options."""

    data: xr.DataArray
    header: list
    sizes: dict
    chrom: np.ndarray
    start: np.ndarray
    block: int
    inverse_transform: bool
    progress: bool

    def write(self, targets: list[tuple[Path, dict]]) -> None:
        """Write one bigWig per ``(path, selection)`` in one pass over the positions.

        Files are written under ``<name>.partial`` and renamed when complete, so an
        interrupted export never leaves a file that looks finished.
        """
        import pyBigWig

        tmp = [path.with_name(path.name + ".partial") for path, _ in targets]
        for path in tmp:  # pyBigWig crashes on a file it cannot create: check first
            try:
                with open(path, "wb"):
                    pass
            except OSError as err:
                raise ExportError(
                    f"Cannot write {path.parent}: {err.strerror}; pass a writable folder."
                ) from err
        handles = []
        try:
            for path in tmp:
                bw = pyBigWig.open(str(path), "w")
                bw.addHeader(self.header, maxZooms=10)
                handles.append(bw)
            data = self.data
            if DIM_CELLTYPE in data.dims or DIM_ASSAY in data.dims:
                sub = xr.concat([data.sel(selection) for _, selection in targets], dim="_track")
            else:
                sub = data.expand_dims("_track")
            n = data.sizes[DIM_POSITION]
            for lo in progress(
                range(0, n, self.block), desc="export-bigwig", verbose=self.progress, outer=False
            ):
                hi = min(lo + self.block, n)
                values = np.asarray(sub.isel({DIM_POSITION: slice(lo, hi)}).values, np.float64)
                if self.inverse_transform:
                    values = np.sinh(values)
                values = values.astype(np.float32)
                chrom, start = self.chrom[lo:hi], self.start[lo:hi]
                first, length = segment_runs(chrom, start)
                for a, b in zip(first.tolist(), (first + length).tolist(), strict=True):
                    c = str(chrom[a])
                    for row, bw in enumerate(handles):
                        _add_run(bw, c, start[a:b], values[row, a:b], self.sizes[c])
            for bw in handles:
                bw.close()
            handles = []
            for path, (final, _) in zip(tmp, targets, strict=True):
                os.replace(path, final)
        finally:
            for bw in handles:
                bw.close()
            for path in tmp:
                if path.exists():
                    path.unlink()


def _add_run(bw, chrom: str, starts: np.ndarray, values: np.ndarray, size: int) -> None:
    """Add one run of contiguous bins, split at NaN; the chromosome's last bin is clipped."""
    finite = np.isfinite(values)
    if not finite.any():
        return
    edges = np.flatnonzero(np.diff(np.concatenate([[0], finite.astype(np.int8), [0]])))
    for a, b in zip(edges[0::2], edges[1::2], strict=True):
        tail = int(starts[b - 1]) + RESOLUTION > size
        stop = b - 1 if tail else b
        if stop > a:
            bw.addEntries(
                chrom,
                int(starts[a]),
                values=values[a:stop].astype(np.float64).tolist(),
                span=RESOLUTION,
                step=RESOLUTION,
            )
        if tail:
            bw.addEntries([chrom], [int(starts[b - 1])], ends=[size], values=[float(values[b - 1])])
