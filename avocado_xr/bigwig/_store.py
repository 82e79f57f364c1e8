"""The state of an ingest inside its zarr store: template, completion markers, chunk writes.

Ingest state lives in zarr group nodes under ``.avocado_ingest/`` inside the store: the root
node records the settings fingerprint (so a rerun with other settings is refused), and one
node per finished track (``track-<i>-<j>``) records the identity of its file. Markers are
written atomically (temporary file and rename), so a killed run never leaves a marker for an
incomplete track.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np

from .. import __version__
from .._files import read_group_attrs as read_group
from .._files import write_group_attrs as write_group
from ..assembly import KNOWN_GENOMES, Genome
from ..exceptions import IngestError
from ..genome import GenomeLayout
from ..variables import OBSERVED, SIGNAL

__all__ = [
    "erase_track",
    "marker_dir",
    "open_signal",
    "read_group",
    "template_done",
    "write_group",
    "write_observed",
    "write_template",
    "write_values",
]

_STATE = ".avocado_ingest"


def state_dir(store: str) -> Path:
    return Path(store) / _STATE


def marker_dir(store: str, i: int, j: int) -> Path:
    return state_dir(store) / f"track-{i}-{j}"


def template_done(store: str, settings: dict) -> bool:
    """True if ``store`` holds a complete template made with ``settings``."""
    if not os.path.exists(store):
        return False
    root, state = Path(store), state_dir(store)
    previous = (read_group(state) or {}).get("settings")
    if previous is not None:
        current = json.loads(json.dumps(settings))
        if previous != current:
            changed = sorted(
                k for k in set(previous) | set(current) if previous.get(k) != current.get(k)
            )
            raise IngestError(
                f"{store} was made by an ingest with other settings ({', '.join(changed)} "
                "differ), so it cannot be resumed; pass overwrite=True to start again, or "
                "choose another store."
            )
        for stale in state.glob("*/zarr.json.tmp*"):  # left by a killed marker write
            stale.unlink()
        return True
    if not root.is_dir() or (os.listdir(root) and not state.exists()):
        raise IngestError(
            f"{store} exists and was not made by avocado_xr.ingest; pass overwrite=True to "
            "replace it, or choose another path."
        )
    return False  # an empty folder, or a template write interrupted before its marker


def write_template(store, layout, genome, celltypes, assays, fingerprint, options, attrs):
    import dask.array as da

    from ..compendium import make_compendium
    from ..store import save_compendium

    if os.path.exists(store):
        shutil.rmtree(store)
    chrom, start = layout.coords()
    shape = (len(celltypes), len(assays), layout.n_positions)
    chunk = options.position_chunk
    signal = da.zeros(shape, dtype=np.float32, chunks=(1, 1, chunk))
    ds = make_compendium(
        signal,
        celltypes=celltypes,
        assays=assays,
        chrom=chrom,
        start=start,
        observed=np.zeros(shape[:2], dtype=bool),
        genome=genome.name,
        source=f"avocado_xr-{__version__} (bigWig ingest)",
        attrs={"transform": options.transform, **_sizes_attr(genome, layout), **(attrs or {})},
    )
    save_compendium(ds, store, position_chunk=chunk, mode="w", compute=False)
    state_dir(store).mkdir()  # marks the folder as ours before the template is complete
    write_group(state_dir(store), {"settings": fingerprint})


def _sizes_attr(genome: Genome, layout: GenomeLayout) -> dict:
    """Chromosome sizes of a genome that is not packaged, for export's bigWig header."""
    if genome.name in KNOWN_GENOMES:
        return {}
    used = dict.fromkeys(layout.chrom)
    return {"chrom_sizes": ",".join(f"{c}={genome.sizes[c]}" for c in used)}


def write_observed(store: str, celltypes, assays, table) -> None:
    import zarr

    observed = np.zeros((len(celltypes), len(assays)), dtype=bool)
    for row in table.itertuples(index=False):
        i, j = celltypes.index(row.celltype), assays.index(row.assay)
        observed[i, j] = read_group(marker_dir(store, i, j)) is not None
    array = zarr.open_array(store, path=OBSERVED, mode="r+")
    array[...] = observed


def open_signal(store: str, *, keep_empty: bool = True):
    """The store's ``signal`` zarr array, open for writing (open it once per task: each open
    reads and parses its metadata).

    With ``keep_empty`` (the default) a chunk that is all NaN, the fill value, is written
    too (zarr would skip it): every chunk of an observed track then has its file, which reads
    check (a missing one means damage), also where ``missing="nan"`` leaves a block of a
    partly covered file all NaN. Erasing a track opens it without.
    """
    import zarr

    if not keep_empty:
        return zarr.open_array(store, path=SIGNAL, mode="r+")
    if hasattr(zarr.Array, "with_config"):
        array = zarr.open_array(store, path=SIGNAL, mode="r+")
        return array.with_config({"write_empty_chunks": True})
    with zarr.config.set({"array.write_empty_chunks": True}):  # pragma: no cover - zarr < 3.1
        return zarr.open_array(store, path=SIGNAL, mode="r+")


def write_values(signal, i: int, j: int, lo: int, values: np.ndarray) -> None:
    """Write positions ``[lo, lo + len(values))`` of one track (the only place that writes
    signal); ``signal`` is the array from :func:`open_signal`, or the store's path."""
    if isinstance(signal, str | os.PathLike):
        signal = open_signal(os.fspath(signal))
    signal[i, j, lo : lo + len(values)] = values


def erase_track(store: str, i: int, j: int, n_positions: int, chunk: int) -> None:
    """Remove a track's completion marker and every chunk it wrote."""
    shutil.rmtree(marker_dir(store, i, j), ignore_errors=True)
    meta = json.loads((Path(store) / SIGNAL / "zarr.json").read_text())
    encoding = meta.get("chunk_key_encoding", {})
    if (
        encoding.get("name") == "default"
        and encoding.get("configuration", {}).get("separator", "/") == "/"
    ):  # the track's chunks are the files under signal/c/<i>/<j>/
        shutil.rmtree(Path(store) / SIGNAL / "c" / str(i) / str(j), ignore_errors=True)
        return
    signal = open_signal(store, keep_empty=False)  # all-NaN chunks are deleted, not written
    for lo in range(0, n_positions, chunk):
        hi = min(lo + chunk, n_positions)
        write_values(signal, i, j, lo, np.full(hi - lo, np.nan, dtype=np.float32))
