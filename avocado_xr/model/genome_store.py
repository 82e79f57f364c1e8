"""Genome factors on zarr: the 25-bp, 250-bp and 5-kbp tables of a genome-wide model.

A genome-wide model's genome factors (~1.2e8 x 25 plus the coarse tables: ~15 GB) do not fit
in memory; they live in a zarr store with one array per chromosome and scale,
``<chrom>/genome_25bp`` (positions x 25), ``<chrom>/genome_250bp`` and
``<chrom>/genome_5kbp`` (coarse bins x 40 and x 45), chunked along position and checksummed.
One array per chromosome means the chromosome tasks of phase-2 training never write the same
chunk, so they can run anywhere, in any order, and a rerun or a retried task rewrites exactly
its own arrays. The root records the genome layout (:class:`~avocado_xr.genome.GenomeLayout`)
and the widths; ``<chrom>/done`` records a finished chromosome (its training history).

Reads are by global position range (:meth:`GenomeFactorStore.features`), touching only the
chromosomes and chunks the range covers, so an imputation task reads only its own rows.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import dask.array as da
import numpy as np
import xarray as xr

from .._files import read_group_attrs, write_group_attrs
from ..coords import genome_coords
from ..exceptions import ModelFileError, StoreError
from ..genome import COARSE_SCALES, GenomeLayout
from ..variables import DEFAULT_POSITION_CHUNK, DIM_POSITION

__all__ = ["SCALE_NAMES", "GenomeFactorStore"]

FORMAT = "avocado_xr-genome-factors-1"
#: names of the three scales, finest first (``COARSE_SCALES`` bp)
SCALE_NAMES = ("25bp", "250bp", "5kbp")


class GenomeFactorStore:
    """The genome factors of a genome-wide model, on zarr (see the module notes).

    Parameters
    ----------
    path : str or path
        The store (a directory).

    Raises
    ------
    ModelFileError
        No such store, or not a genome-factor store.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        attrs = read_group_attrs(self.path)
        if attrs is None or attrs.get("format") != FORMAT:
            raise ModelFileError(
                f"{str(self.path)!r} is not a genome-factor store ({FORMAT}); it is written by "
                "avocado_xr.fit_genome()."
            )
        self.layout = GenomeLayout.from_dict(attrs["layout"])
        self.widths = tuple(int(w) for w in attrs["widths"])
        self.chroms = list(dict.fromkeys(self.layout.chrom))
        first = {c: k for k, c in reversed(list(enumerate(self.layout.chrom)))}
        offsets = self.layout.offsets
        self._chrom_first = {c: int(offsets[first[c]]) for c in self.chroms}
        self._bins = {s: self.layout.scale_bins(s)[1] for s in COARSE_SCALES[1:]}
        self._first_segment = first

    def __getstate__(self):  # picklable: path and small metadata only
        return {"path": str(self.path)}

    def __setstate__(self, state):
        self.__init__(state["path"])

    @classmethod
    def create(
        cls,
        path: str | os.PathLike,
        layout: GenomeLayout,
        widths,
        *,
        chunk: int = DEFAULT_POSITION_CHUNK,
    ) -> GenomeFactorStore:
        """Create the store (idempotent: an existing store of the same layout and widths is
        opened; another is an error)."""
        import zarr

        from ..store import checksummed

        path = Path(path)
        widths = [int(w) for w in widths]
        attrs = read_group_attrs(path)
        if attrs is not None:
            if attrs.get("format") == FORMAT and attrs["layout"] == layout.to_dict():
                if list(attrs["widths"]) == widths:
                    return cls(path)
            raise StoreError(
                f"{str(path)!r} holds genome factors of another layout or model; choose "
                "another store, or delete it to start again."
            )
        if path.exists() and any(path.iterdir()):
            raise StoreError(f"{str(path)!r} exists and is not a genome-factor store.")
        path.mkdir(parents=True, exist_ok=True)
        for chrom in dict.fromkeys(layout.chrom):
            rows = _chrom_rows(layout, chrom)
            for name, width, n in zip(SCALE_NAMES, widths, rows, strict=True):
                zarr.create_array(
                    path / chrom,
                    name=f"genome_{name}",
                    shape=(n, width),
                    chunks=(min(chunk, n), width),
                    dtype="float32",
                    fill_value=np.float32("nan"),
                    compressors=checksummed()["compressors"],
                    zarr_format=3,
                )
            write_group_attrs(path / chrom, {"chrom": chrom})
        write_group_attrs(path, {"format": FORMAT, "layout": layout.to_dict(), "widths": widths})
        return cls(path)

    # ------------------------------------------------------------------ chromosomes

    def write(self, chrom: str, tables) -> None:
        """Write the three tables of one chromosome (rows: its positions and coarse bins)."""
        import zarr

        for name, table in zip(SCALE_NAMES, tables, strict=True):
            zarr.open_array(self.path / chrom / f"genome_{name}", mode="r+")[...] = np.asarray(
                table, dtype=np.float32
            )

    def read(self, chrom: str) -> list[np.ndarray]:
        """The three tables of one chromosome."""
        import zarr

        return [
            zarr.open_array(self.path / chrom / f"genome_{name}", mode="r")[...]
            for name in SCALE_NAMES
        ]

    def done(self, chrom: str) -> dict | None:
        """The record of a finished chromosome (its history), or None."""
        return read_group_attrs(self.path / chrom / "done")

    def mark_done(self, chrom: str, record: dict) -> None:
        write_group_attrs(self.path / chrom / "done", json.loads(json.dumps(record)))

    def missing(self) -> list[str]:
        """Chromosomes whose factors have not been written yet."""
        return [c for c in self.chroms if self.done(c) is None]

    # ------------------------------------------------------------------ reads

    def features(self, positions: np.ndarray) -> np.ndarray:
        """``(len(positions), sum(widths))`` genome features of global positions (sorted or
        not), reading only the chromosomes and chunks they fall in."""
        import zarr

        positions = np.asarray(positions, dtype=np.int64)
        out = np.empty((len(positions), sum(self.widths)), dtype=np.float32)
        chrom, _ = self.layout.coords_at(positions)
        coarse = [positions] + [self.layout.scale_index_at(s, positions) for s in COARSE_SCALES[1:]]
        for name in dict.fromkeys(chrom.tolist()):
            hit = np.flatnonzero(chrom == name)
            first = self._chrom_first[name]
            seg = self._first_segment[name]
            local = [coarse[0][hit] - first] + [
                coarse[k][hit] - self._bins[s][seg] for k, s in enumerate(COARSE_SCALES[1:], 1)
            ]
            column = 0
            for scale, width, rows in zip(SCALE_NAMES, self.widths, local, strict=True):
                lo, hi = int(rows.min()), int(rows.max()) + 1
                block = zarr.open_array(self.path / name / f"genome_{scale}", mode="r")[lo:hi]
                out[hit, column : column + width] = block[rows - lo]
                column += width
        if np.isnan(out).any():
            bad = sorted({str(c) for c in chrom[np.isnan(out).any(1)]})
            raise StoreError(
                f"The genome factors of {bad} in {self.path} have not been written; finish "
                "training them with fit_genome() (a rerun resumes)."
            )
        return out

    def dataset(self) -> xr.Dataset:
        """The factors as a lazy Dataset: ``genome_factors_25bp`` (position, factor_25bp)
        with ``chrom``/``start``, and the coarse scales along ``position_250bp`` and
        ``position_5kbp`` with their own coordinates (O(chromosomes) to build)."""
        variables, coords = {}, genome_coords(self.layout)
        for k, (scale, name) in enumerate(zip(COARSE_SCALES, SCALE_NAMES, strict=True)):
            parts = [da.from_zarr(str(self.path / c / f"genome_{name}")) for c in self.chroms]
            suffix = "" if k == 0 else f"_{name}"
            variables[f"genome_factors_{name}"] = (
                (DIM_POSITION + suffix, f"factor_{name}"),
                da.concatenate(parts, axis=0),
            )
            if k:
                coords = coords.merge(genome_coords(self.layout.coarse(scale), suffix))
        return xr.Dataset(variables, coords=coords)


def _chrom_rows(layout: GenomeLayout, chrom: str) -> tuple[int, int, int]:
    """Rows of one chromosome in the three tables: positions, 250-bp and 5-kbp bins."""
    _, sub = layout.chromosome(chrom)
    return (sub.n_positions, *(sub.n_scale_bins(s) for s in COARSE_SCALES[1:]))
