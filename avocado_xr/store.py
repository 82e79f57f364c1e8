"""The compendium on zarr: checksummed writes, reads that name what failed, verification.

On zarr a compendium is chunked one track by one position block, so that unobserved tracks
are never written (zarr skips chunks that hold only the NaN fill value) and a block of
positions is read for all observed tracks with one chunk read per track. Every chunk the
package writes carries two checksums (zstd's frame checksum and a CRC32C of the stored bytes),
so a flipped byte is detected on read. Reads through :func:`open_compendium` turn a failed
checksum, an undecodable chunk, or a missing chunk file of an observed track (which zarr would
silently read back as NaN) into an error naming the track, the positions and the file.
:func:`verify_store` scans a whole store.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import dask.array as da
import numpy as np
import xarray as xr

from ._progress import progress
from .bins import chrom_labels
from .coords import dataset_layout, genome_coords
from .exceptions import ChunkingError, StoreError
from .genome import GenomeLayout
from .variables import (
    CHROM,
    DEFAULT_POSITION_CHUNK,
    DIM_ASSAY,
    DIM_CELLTYPE,
    DIM_POSITION,
    OBSERVED,
    SIGNAL,
    START,
    validate,
)

__all__ = ["checksummed", "open_compendium", "save_compendium", "verify_store"]


def checksummed(**encoding) -> dict:
    """A zarr v3 encoding whose chunks carry checksums (zstd frame checksum + CRC32C).

    Examples
    --------
    >>> [type(c).__name__ for c in checksummed(chunks=(10,))["compressors"]]
    ['ZstdCodec', 'Crc32cCodec']
    """
    from zarr.codecs import Crc32cCodec, ZstdCodec

    return {**encoding, "compressors": [ZstdCodec(level=0, checksum=True), Crc32cCodec()]}


def save_compendium(
    ds: xr.Dataset,
    store: str | os.PathLike,
    *,
    position_chunk: int = DEFAULT_POSITION_CHUNK,
    mode: str = "w-",
    compute: bool = True,
):
    """Write a compendium to a zarr (format 3) store, one chunk per track and position block.

    Chunks of unobserved tracks hold only NaN, the fill value, and are never written; every
    chunk is checksummed (see the module notes).

    Parameters
    ----------
    ds : xarray.Dataset
        The compendium (NumPy- or Dask-backed).
    store : str or path
        Target directory (``.zarr``).
    position_chunk : int
        Positions per chunk. Default is 131072 (2**17).
    mode : str
        ``"w-"`` (fail if it exists, default) or ``"w"`` (overwrite).
    compute : bool
        Write now (default) or return a ``dask.delayed`` object to compute later.
    """
    validate(ds)
    path = os.fspath(store)
    if mode == "w-" and os.path.exists(path):
        raise StoreError(f"{path!r} already exists; pass mode='w' to overwrite it.")
    parent = Path(path).resolve().parent
    if not os.access(parent if parent.exists() else Path.cwd(), os.W_OK):
        raise StoreError(f"Cannot write {path!r}: {str(parent)!r} is not writable.")
    layout = dataset_layout(ds)
    out = ds.drop_vars([CHROM, START]).assign_coords(_stored_coords(layout, position_chunk))
    out.attrs["layout"] = json.dumps(layout.to_dict())
    for name in out.variables:
        out[name].encoding = {}
    out[SIGNAL] = (
        out[SIGNAL]
        .astype(np.float32)
        .chunk({DIM_CELLTYPE: 1, DIM_ASSAY: 1, DIM_POSITION: position_chunk})
    )
    out[OBSERVED] = out[OBSERVED].load() if not _is_dask(out[OBSERVED]) else out[OBSERVED]
    for name in (DIM_CELLTYPE, DIM_ASSAY):
        if _is_dask(out[name]):
            raise ChunkingError(
                f"Coordinate {name!r} is Dask-backed; load it first with ds[{name!r}].load()."
            )
    encoding = {
        SIGNAL: checksummed(chunks=(1, 1, position_chunk), fill_value=np.float32("nan")),
        OBSERVED: checksummed(),
        CHROM: {"chunks": (position_chunk,)},
        START: checksummed(chunks=(position_chunk,)),
    }  # chrom/start are written for readers without avocado_xr; it reads the layout attr
    delayed = out.to_zarr(
        store, mode=mode, zarr_format=3, consolidated=False, encoding=encoding, compute=compute
    )
    if not compute:  # the metadata exists now; coordinates are written at once, block by block
        import zarr

        for name in (CHROM, START):
            array = zarr.open_array(path, path=name, mode="r+")
            data = out[name].data
            for lo, size in zip(np.cumsum((0,) + data.chunks[0][:-1]), data.chunks[0], strict=True):
                array[lo : lo + size] = data[lo : lo + size].compute(scheduler="synchronous")
    return delayed


class StoredSignal:
    """The ``signal`` array of a compendium store, read chunk-aligned by Dask, whose read
    errors name the track, the positions and the chunk file (picklable: holds the path).

    A chunk file of an observed track that is missing (zarr would read NaN) is an error too.
    """

    ndim = 3

    def __init__(self, path: str, celltypes, assays, observed: np.ndarray):
        import zarr

        self.path = os.fspath(path)
        self.celltypes, self.assays = list(celltypes), list(assays)
        self.observed = np.asarray(observed, dtype=bool)
        array = zarr.open_array(self.path, path=SIGNAL, mode="r")
        self.shape, self.dtype, self.chunks = array.shape, array.dtype, array.chunks
        self._array = array

    def __getstate__(self):
        return {k: v for k, v in self.__dict__.items() if k != "_array"}

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._array = None

    def _open(self):
        import zarr

        if getattr(self, "_array", None) is None:
            self._array = zarr.open_array(self.path, path=SIGNAL, mode="r")
        return self._array

    def chunk_file(self, i: int, j: int, k: int) -> Path:
        return Path(self.path) / SIGNAL / "c" / str(i) / str(j) / str(k)

    def _span(self, key) -> tuple[list[int], list[int], range]:
        """Tracks (rows, columns) and the chunk numbers along position that ``key`` reads."""
        key = key if isinstance(key, tuple) else (key,)
        key = key + (slice(None),) * (3 - len(key))
        spans = []
        for k, n in zip(key, self.shape, strict=True):
            if isinstance(k, slice):
                spans.append(list(range(*k.indices(n))))
            else:
                spans.append(sorted({int(v) % n for v in np.asarray(k).ravel()}))
        size = self.chunks[2]
        positions = spans[2] or [0]
        return spans[0], spans[1], range(positions[0] // size, positions[-1] // size + 1)

    def __getitem__(self, key):
        rows, cols, chunks = self._span(key)
        for i in rows:
            for j in cols:
                if self.observed[i, j]:
                    for k in chunks:
                        if not self.chunk_file(i, j, k).exists():
                            raise StoreError(self._describe(i, j, k, "its chunk file is missing"))
        try:
            return self._open()[key]
        except Exception as err:  # a failed checksum or an undecodable chunk: find which
            size = self.chunks[2]
            for i in rows:
                for j in cols:
                    for k in chunks:
                        try:
                            self._open()[i, j, k * size : (k + 1) * size]
                        except Exception as chunk_err:
                            raise StoreError(self._describe(i, j, k, str(chunk_err))) from err
            raise

    def _describe(self, i: int, j: int, k: int, problem: str) -> str:
        size = self.chunks[2]
        return (
            f"Track ({self.celltypes[i]!r}, {self.assays[j]!r}), positions "
            f"{k * size}-{min((k + 1) * size, self.shape[2])} of {self.path}: {problem} "
            f"(chunk file {self.chunk_file(i, j, k)}). The store is damaged: re-ingest or "
            "restore this track, and run avocado-xr verify on the store."
        )


def open_compendium(store: str | os.PathLike, *, validate_store: bool = True) -> xr.Dataset:
    """Open a zarr compendium lazily (Dask-backed ``signal``; coordinates in memory).

    Reads of the signal check every chunk's checksums and that the chunk files of observed
    tracks exist; a damaged chunk is reported with its track, positions and file.

    Raises
    ------
    StoreError
        No store at ``store``, or not a zarr v3 compendium (e.g. zarr v2, another layout).

    Examples
    --------
    >>> import tempfile, os, avocado_xr as ax
    >>> ds = ax.testing.simulate_compendium(n_positions=1_000, seed=0)
    >>> path = os.path.join(tempfile.mkdtemp(), "sim.zarr")
    >>> _ = ax.save_compendium(ds, path)
    >>> lazy = ax.open_compendium(path)
    >>> type(lazy.signal.data).__name__
    'Array'
    """
    meta, stored = _open_parts(store)
    path = stored.path
    stat = os.stat(Path(path) / SIGNAL / "zarr.json")
    signal = da.from_array(
        stored,
        chunks=stored.chunks,
        asarray=False,
        name=f"compendium-signal-{da.core.tokenize(path, stat.st_mtime_ns, stored.shape)}",
        meta=np.empty((0, 0, 0), dtype=stored.dtype),
    )
    if "layout" in meta.attrs:  # O(segments): no coordinate is read
        layout = GenomeLayout.from_dict(json.loads(meta.attrs["layout"]))
    else:  # a store written without its layout: read the coordinates once
        layout = GenomeLayout.from_coords(
            _read_chrom(meta[CHROM]), meta[START].values, int(meta.attrs.get("resolution", 25))
        )
    ds = meta.drop_vars([SIGNAL, CHROM, START], errors="ignore").assign(
        {SIGNAL: (meta[SIGNAL].dims, signal, meta[SIGNAL].attrs), OBSERVED: meta[OBSERVED]}
    )
    ds[SIGNAL].encoding = {"chunks": stored.chunks, "dtype": stored.dtype}
    ds = ds.assign_coords(genome_coords(layout))
    ds.attrs.pop("layout", None)
    ds.encoding["source"] = stored.path  # where tasks can open it again
    ds = ds.assign_coords(
        {
            DIM_CELLTYPE: np.asarray(stored.celltypes, dtype=object),
            DIM_ASSAY: np.asarray(stored.assays, dtype=object),
        }
    )
    if validate_store:
        validate(ds)
    return ds


def _stored_coords(layout: GenomeLayout, chunk: int) -> dict:
    """``chrom``/``start`` as Dask arrays computed block by block from the layout, so a
    genome-wide store writes its coordinates without holding them in memory at once."""

    names = np.dtype(f"<U{max(len(c) for c in layout.chrom)}")

    def block(which: int, block_info=None):
        lo, hi = block_info[None]["array-location"][0]
        values = layout.coords_at(np.arange(lo, hi))[which]
        return values.astype(names) if which == 0 else values

    chunks = ((min(chunk, layout.n_positions - lo) for lo in range(0, layout.n_positions, chunk)),)
    chunks = (tuple(chunks[0]),)
    chrom = da.map_blocks(block, 0, chunks=chunks, dtype=names, meta=np.empty(0, names))
    start = da.map_blocks(block, 1, chunks=chunks, dtype=np.int64, meta=np.empty(0, np.int64))
    return {CHROM: (DIM_POSITION, chrom), START: (DIM_POSITION, start)}


def _open_parts(store) -> tuple[xr.Dataset, StoredSignal]:
    """The store's variables (small ones loaded, signal not read) and its signal reader."""
    path = os.fspath(store)
    if not os.path.exists(path):
        raise StoreError(
            f"No zarr store at {path!r}; write one with save_compendium() or ingest()."
        )
    if not (Path(path) / "zarr.json").is_file():
        found = "a zarr v2 store" if (Path(path) / ".zgroup").exists() else "not a zarr v3 group"
        raise StoreError(
            f"{path!r} is {found}; avocado_xr reads zarr v3 compendia written by "
            "save_compendium() or ingest()."
        )
    try:
        meta = xr.open_zarr(path, consolidated=False, zarr_format=3, chunks=None)
    except (ValueError, KeyError, OSError) as err:
        raise StoreError(f"{path!r} cannot be opened as a zarr v3 store: {err}") from err
    needed = (SIGNAL, OBSERVED) if "layout" in meta.attrs else (SIGNAL, OBSERVED, CHROM, START)
    missing = [name for name in needed if name not in meta.variables]
    if missing:
        raise StoreError(
            f"{path!r} is a zarr store but not a compendium: it has no {missing}; write "
            "compendia with save_compendium() or ingest()."
        )
    meta[OBSERVED] = meta[OBSERVED].load()
    celltypes = [str(c) for c in meta.get_index(DIM_CELLTYPE)]
    assays = [str(a) for a in meta.get_index(DIM_ASSAY)]
    return meta, StoredSignal(path, celltypes, assays, meta[OBSERVED].values)


def verify_store(store: str | os.PathLike, *, progress_bar: bool = False) -> list[str]:
    """Read every chunk of a compendium store's observed tracks and list what is damaged.

    Checks each chunk's checksums (a flipped byte anywhere in a chunk is found), that no
    chunk file of an observed track is missing, and that observed tracks hold no NaN or
    infinite values. Unobserved tracks have no chunks to check.

    Parameters
    ----------
    store : str or path
        A compendium written by :func:`save_compendium` or :func:`avocado_xr.ingest`.
    progress_bar : bool
        Show a progress bar over the tracks. Default is False.

    Returns
    -------
    list of str
        One line per problem (track, positions, chunk file, what); empty if the store is
        intact.

    Examples
    --------
    >>> import tempfile, os, avocado_xr as ax
    >>> path = os.path.join(tempfile.mkdtemp(), "sim.zarr")
    >>> _ = ax.save_compendium(ax.testing.simulate_compendium(n_positions=500), path)
    >>> ax.verify_store(path)
    []
    """
    stored = _open_parts(store)[1]
    size, n = stored.chunks[2], stored.shape[2]
    problems = []
    tracks = [tuple(ij) for ij in np.argwhere(stored.observed)]
    for i, j in progress(tracks, desc="verify", total=len(tracks), verbose=progress_bar):
        for k in range(-(-n // size)):
            lo, hi = k * size, min((k + 1) * size, n)
            try:
                values = stored[i : i + 1, j : j + 1, lo:hi]
            except StoreError as err:
                problems.append(str(err))
                continue
            bad = int(np.count_nonzero(~np.isfinite(values)))
            if bad:
                problems.append(stored._describe(i, j, k, f"{bad} NaN or infinite value(s)"))
    return problems


def _read_chrom(var: xr.DataArray, step: int = 1 << 20) -> np.ndarray:
    """Read chromosome names block by block into one object array of shared strings
    (a genome-wide store would otherwise decode one string object per bin at once)."""
    out = np.empty(var.shape[0], dtype=object)
    for lo in range(0, len(out), step):
        out[lo : lo + step] = chrom_labels(var[lo : lo + step].values)
    return chrom_labels(out)


def _is_dask(obj) -> bool:
    return isinstance(getattr(obj, "data", None), da.Array)
