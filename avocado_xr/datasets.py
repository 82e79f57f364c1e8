"""Real data sets, labelled as compendia.

``roadmap_pilot()`` gives the 25 Roadmap tracks of the original Avocado's example data
(cell types E003, E017, E065, E116, E117 x assays H3K4me3, H3K27me3, H3K36me3, H3K9me3,
H3K4me1) over the 42 autosomal ENCODE pilot regions of hg19, with their true ``chrom`` and
``start`` coordinates. ``roadmap_pilot_sample()`` is a three-region subset embedded in the
package, so demos and quick tests run offline.
"""

from __future__ import annotations

import hashlib
import os
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from .compendium import make_compendium
from .exceptions import AvocadoXrError
from .variables import RESOLUTION

__all__ = [
    "PILOT_ASSAYS",
    "PILOT_CELLTYPES",
    "pilot_regions",
    "roadmap_pilot",
    "roadmap_pilot_sample",
]

PILOT_CELLTYPES = ("E003", "E017", "E065", "E116", "E117")
PILOT_ASSAYS = ("H3K4me3", "H3K27me3", "H3K36me3", "H3K9me3", "H3K4me1")
#: environment variable naming a local directory that holds the 25 pilot ``.npz`` files
ENV_VAR = "AVOCADO_XR_ROADMAP_PILOT"
_REGISTRY = "roadmap_pilot_registry.txt"
_BASE_URL = (
    "https://raw.githubusercontent.com/jmschrei/avocado/"
    "be5dad9f5dd456bb2f142d924647a5331bcff22a/data/"
)


class DataNotFoundError(AvocadoXrError, FileNotFoundError):
    """A data set's files are neither at the given path nor downloadable."""


def _data_file(name: str) -> Path:
    return Path(str(resources.files("avocado_xr") / "data" / name))


def pilot_file_name(celltype: str, assay: str) -> str:
    """File name of one pilot track, e.g. ``E065.H3K4me3.pilot.arcsinh.npz``."""
    return f"{celltype}.{assay}.pilot.arcsinh.npz"


def registry() -> dict[str, str]:
    """The pinned SHA256 of every pilot file, as ``{file name: hex digest}``.

    The table is the package copy of ``io/registry/roadmap_pilot.txt`` (a test keeps the two
    identical).
    """
    out = {}
    for line in _data_file(_REGISTRY).read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, digest = line.split()
            out[name] = digest.removeprefix("sha256:")
    return out


def pilot_regions() -> pd.DataFrame:
    """The 42 ENCODE pilot regions (hg19) in the order of the pilot vectors.

    Columns: ``chrom``, ``start``, ``end``, ``name`` (UCSC coordinates, 0-based half-open),
    ``offset`` (first position index of the region), ``n_bins`` and ``first_bin_start``.
    The 25-bp bins of a region start one bin before ``start // 25 * 25`` and number
    ``end // 25 - start // 25 + 2`` (the layout of the original Avocado's data).

    Examples
    --------
    >>> regions = pilot_regions()
    >>> len(regions), int(regions.n_bins.sum())
    (42, 1126469)
    """
    rows = []
    offset = 0
    for line in _data_file("encode_pilot_regions.hg19.bed").read_text().splitlines():
        fields = line.split("\t")
        chrom, start, end, name = fields[0], int(fields[1]), int(fields[2]), fields[3]
        n_bins = end // RESOLUTION - start // RESOLUTION + 2
        first = (start // RESOLUTION - 1) * RESOLUTION
        rows.append((chrom, start, end, name, offset, n_bins, first))
        offset += n_bins
    return pd.DataFrame(
        rows, columns=["chrom", "start", "end", "name", "offset", "n_bins", "first_bin_start"]
    )


def _coordinates(regions: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    chrom = np.concatenate([np.full(r.n_bins, r.chrom, dtype=object) for r in regions.itertuples()])
    start = np.concatenate(
        [r.first_bin_start + RESOLUTION * np.arange(r.n_bins) for r in regions.itertuples()]
    )
    return chrom, start.astype(np.int64)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _local_files(directory: Path, names: list[str], pins: dict[str, str]) -> dict[str, Path]:
    if not directory.is_dir():
        raise DataNotFoundError(f"{str(directory)!r} is not a directory of pilot .npz files.")
    files = {}
    for name in names:
        path = directory / name
        if not path.is_file():
            raise DataNotFoundError(
                f"{name} is missing from {str(directory)!r}; the directory must hold all 25 "
                "pilot tracks (or pass download=True and no path to fetch them)."
            )
        if _sha256(path) != pins[name]:
            raise DataNotFoundError(
                f"{path} does not match its pinned SHA256 ({pins[name][:12]}...); the file is "
                "corrupt or not the published pilot track."
            )
        files[name] = path
    return files


def _download(names: list[str], pins: dict[str, str], cache: str | None) -> dict[str, Path]:
    try:
        import pooch
    except ImportError as err:  # pragma: no cover - pooch is a core dependency
        raise ImportError("Downloading the pilot data needs pooch: pip install pooch") from err
    fetcher = pooch.create(
        path=cache or pooch.os_cache("avocado_xr"),
        base_url=_BASE_URL,
        registry={name: f"sha256:{pins[name]}" for name in names},
    )
    return {name: Path(fetcher.fetch(name)) for name in names}


def roadmap_pilot(
    path: str | os.PathLike | None = None, *, download: bool = True, cache: str | None = None
) -> xr.Dataset:
    """The 25 real Roadmap pilot-region tracks as a compendium Dataset (hg19).

    Files are looked up in this order: the directory ``path``; the directory named by the
    environment variable ``AVOCADO_XR_ROADMAP_PILOT``; a download (pooch, cached) from the
    original Avocado repository at a pinned commit. Every file is checked against its pinned
    SHA256 (``io/registry/roadmap_pilot.txt``).

    Parameters
    ----------
    path : str or path, optional
        Local directory holding the 25 ``{celltype}.{assay}.pilot.arcsinh.npz`` files.
    download : bool
        Allow the download when no local directory is given. Default is True.
    cache : str, optional
        Download cache directory. Default is pooch's OS cache for ``avocado_xr``.

    Returns
    -------
    xarray.Dataset
        5 cell types x 5 assays x 1,126,469 positions, NumPy-backed (112 MB of float32),
        with ``chrom``/``start`` at the true hg19 bins.

    Examples
    --------
    >>> import avocado_xr as ax
    >>> ds = ax.datasets.roadmap_pilot()  # doctest: +SKIP
    >>> ds.avocado.region("chr11:2,000,000-2,001,000").signal.sel(  # doctest: +SKIP
    ...     celltype="E003", assay="H3K4me3")
    """
    pins = registry()
    names = [pilot_file_name(c, a) for c in PILOT_CELLTYPES for a in PILOT_ASSAYS]
    directory = path if path is not None else os.environ.get(ENV_VAR)
    if directory:
        files = _local_files(Path(directory), names, pins)
    elif download:
        files = _download(names, pins, cache)
    else:
        raise DataNotFoundError(
            f"No pilot data directory: pass path=..., set ${ENV_VAR}, or allow download=True."
        )
    regions = pilot_regions()
    n_positions = int(regions.n_bins.sum())
    signal = np.empty((len(PILOT_CELLTYPES), len(PILOT_ASSAYS), n_positions), dtype=np.float32)
    for i, celltype in enumerate(PILOT_CELLTYPES):
        for j, assay in enumerate(PILOT_ASSAYS):
            with np.load(files[pilot_file_name(celltype, assay)]) as npz:
                track = npz["arr_0"]
            if track.shape != (n_positions,):
                raise DataNotFoundError(
                    f"Track ({celltype!r}, {assay!r}) has {track.shape} values, expected "
                    f"({n_positions},)."
                )
            signal[i, j] = track
    return _pilot_compendium(signal, regions, "ENCODE pilot regions (42 autosomal)")


def roadmap_pilot_sample() -> xr.Dataset:
    """Three real pilot regions x all 25 tracks, embedded in the package (64,248 positions).

    The regions are ENr231 (chr1, 500 kb), ENm011 (chr11, the IGF2/H19 locus, 606 kb) and
    ENr333 (chr20, 500 kb); values are exactly those of :func:`roadmap_pilot`.

    Examples
    --------
    >>> import avocado_xr as ax
    >>> ds = ax.datasets.roadmap_pilot_sample()
    >>> dict(ds.sizes)
    {'celltype': 5, 'assay': 5, 'position': 64248}
    >>> sorted(set(ds.chrom.values))
    ['chr1', 'chr11', 'chr20']
    """
    with np.load(_data_file("roadmap_pilot_sample.npz")) as npz:
        signal, names = npz["signal"], [str(n) for n in npz["regions"]]
    regions = pilot_regions().set_index("name").loc[names].reset_index()
    return _pilot_compendium(signal, regions, ",".join(names))


def _pilot_compendium(signal: np.ndarray, regions: pd.DataFrame, description: str) -> xr.Dataset:
    chrom, start = _coordinates(regions)
    return make_compendium(
        signal,
        celltypes=PILOT_CELLTYPES,
        assays=PILOT_ASSAYS,
        chrom=chrom,
        start=start,
        observed=np.ones(signal.shape[:2], dtype=bool),
        genome="hg19",
        source="Roadmap Epigenomics consolidated MACS2 -log10 p (jmschrei/avocado pilot data)",
        attrs={"regions": description},
    )
