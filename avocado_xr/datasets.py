"""Real data sets, labelled as compendia.

``roadmap_pilot()`` gives the 25 Roadmap tracks of the original Avocado's example data
(cell types E003, E017, E065, E116, E117 x assays H3K4me3, H3K27me3, H3K36me3, H3K9me3,
H3K4me1) over the 42 autosomal ENCODE pilot regions of hg19, with their true ``chrom`` and
``start`` coordinates. ``roadmap_pilot_sample()`` is a three-region subset embedded in the
package, so demos and quick tests run offline.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from ._files import file_digest
from .assembly import package_data
from .compendium import make_compendium
from .exceptions import DataNotFoundError
from .genome import GenomeLayout

__all__ = [
    "PILOT_ASSAYS",
    "PILOT_CELLTYPES",
    "pilot_layout",
    "pilot_regions",
    "roadmap_pilot",
    "roadmap_pilot_sample",
]

PILOT_CELLTYPES = ("E003", "E017", "E065", "E116", "E117")
PILOT_ASSAYS = ("H3K4me3", "H3K27me3", "H3K36me3", "H3K9me3", "H3K4me1")
#: environment variable naming a local directory that holds the 25 pilot ``.npz`` files
ENV_VAR = "AVOCADO_XR_ROADMAP_PILOT"
_REGISTRY = "roadmap_pilot_registry.txt"
_PILOT_BED = "encode_pilot_regions.hg19.bed"
_BASE_URL = (
    "https://raw.githubusercontent.com/jmschrei/avocado/"
    "be5dad9f5dd456bb2f142d924647a5331bcff22a/data/"
)


def pilot_file_name(celltype: str, assay: str) -> str:
    """File name of one pilot track, e.g. ``E065.H3K4me3.pilot.arcsinh.npz``."""
    return f"{celltype}.{assay}.pilot.arcsinh.npz"


def registry() -> dict[str, str]:
    """The pinned SHA256 of every pilot file, as ``{file name: hex digest}``.

    The table is the package copy of ``io/registry/roadmap_pilot.txt`` (a test keeps the two
    identical).
    """
    out = {}
    for line in package_data(_REGISTRY).read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, digest = line.split()
            out[name] = digest.removeprefix("sha256:")
    return out


def pilot_layout() -> GenomeLayout:
    """The positions of the pilot data: the 42 pilot regions of hg19 with the ``"avocado"``
    bin rule of :meth:`~avocado_xr.genome.GenomeLayout.from_regions` (one segment each).

    Examples
    --------
    >>> pilot_layout().n_positions
    1126469
    """
    return GenomeLayout.from_regions(package_data(_PILOT_BED), "hg19", rule="avocado")


def pilot_regions() -> pd.DataFrame:
    """The 42 ENCODE pilot regions (hg19) in the order of the pilot vectors.

    Columns: ``chrom``, ``start``, ``end``, ``name`` (UCSC coordinates, 0-based half-open),
    ``offset`` (first position index of the region), ``n_bins`` and ``first_bin_start``
    (from :func:`pilot_layout`: a region's bins start one bin before ``start // 25 * 25``
    and number ``end // 25 - start // 25 + 2``, the layout of the original Avocado's data).

    Examples
    --------
    >>> regions = pilot_regions()
    >>> len(regions), int(regions.n_bins.sum())
    (42, 1126469)
    """
    bed = pd.read_csv(package_data(_PILOT_BED), sep="\t", header=None, usecols=range(4))
    layout = pilot_layout()
    return pd.DataFrame(
        {
            "chrom": bed[0].astype(str),
            "start": bed[1].astype(np.int64),
            "end": bed[2].astype(np.int64),
            "name": bed[3].astype(str),
            "offset": layout.offsets,
            "n_bins": np.asarray(layout.n_bins, dtype=np.int64),
            "first_bin_start": np.asarray(layout.start, dtype=np.int64),
        }
    )


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
        if file_digest(path) != pins[name]:
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
    files = {}
    for name in names:
        try:
            files[name] = Path(fetcher.fetch(name))
        except ValueError as err:  # pooch's hash mismatch
            raise DataNotFoundError(
                f"The download of {name} does not match its pinned SHA256 "
                f"({pins[name][:12]}...): {err}. The file was not kept; retry later, or pass "
                "path= a directory with verified copies."
            ) from err
        except OSError as err:  # no network, HTTP errors (requests' errors are OSErrors)
            raise DataNotFoundError(
                f"Cannot download {name} from {_BASE_URL} ({err}); pass path= a directory "
                f"of the pilot .npz files or set ${ENV_VAR}."
            ) from err
    return files


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
    layout = pilot_layout()
    n_positions = layout.n_positions
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
    return _pilot_compendium(signal, layout, "ENCODE pilot regions (42 autosomal)")


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
    with np.load(package_data("roadmap_pilot_sample.npz")) as npz:
        signal, names = npz["signal"], [str(n) for n in npz["regions"]]
    regions = pilot_regions().set_index("name").loc[names].reset_index()
    layout = GenomeLayout.from_regions(regions, "hg19", rule="avocado")
    return _pilot_compendium(signal, layout, ",".join(names))


def _pilot_compendium(signal: np.ndarray, layout: GenomeLayout, description: str) -> xr.Dataset:
    chrom, start = layout.coords()
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
