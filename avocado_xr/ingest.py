"""Ingest bigWig files listed in a manifest into a zarr compendium, resumably.

:func:`ingest` writes the compendium contract of DESIGN.md (``signal``, ``observed``,
``celltype``, ``assay``, ``chrom``, ``start``; attrs ``resolution``, ``genome``,
``transform``, ``source``) in three steps:

1. a *template* write (``compute=False``): metadata, coordinates and an all-False
   ``observed``; signal chunks (one track x one position block) are not written;
2. one Dask task per (track, position block) that reads the bigWig (see
   :mod:`avocado_xr.bigwig` for the binning rule), applies the missing-value policy and
   the transform, and writes exactly its own zarr chunk (a non-overlapping region write), on
   the active ``dask.distributed`` client if there is one, else on the local scheduler;
3. per track, a final task that writes a completion marker (a zarr group node
   ``.avocado_ingest/track-<i>-<j>`` inside the store whose attributes identify the file:
   path, size, mtime, checksum) or, if anything went wrong, erases the track's chunks
   again; then the driver writes ``observed`` from the markers.

A rerun on an existing store with the same settings skips the tracks whose markers match
their files, redoes the others from scratch, and so ends with the same store as an
uninterrupted run. One bad file never touches another track's chunks; the
:class:`IngestReport` names each failed file and the reason.
"""

from __future__ import annotations

import json
import os
import shutil
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import numpy as np

from . import __version__
from .bigwig import (
    KNOWN_GENOMES,
    BigWigArray,
    Genome,
    Layout,
    _layout_for,
    check_bigwig_file,
    check_chroms,
    genome_sizes,
    open_bigwig,
)
from .compendium import DEFAULT_POSITION_CHUNK
from .exceptions import AvocadoXrError
from .manifest import ManifestError, is_url, read_manifest, verify_checksum

__all__ = ["IngestError", "IngestReport", "IngestWarning", "ingest"]

_STATE = ".avocado_ingest"
_TRANSFORMS = {"arcsinh": "arcsinh", None: "none", "none": "none", "identity": "none"}


class IngestError(AvocadoXrError):
    """Ingestion cannot start or finish (incompatible existing store, failed tracks)."""


class IngestWarning(UserWarning):
    """Some tracks failed to ingest; the others are complete (see the report)."""


@dataclass
class IngestReport:
    """What :func:`ingest` did, track by track.

    Attributes
    ----------
    store : str
        The zarr store.
    written : list of (celltype, assay)
        Tracks written by this run.
    skipped : list of (celltype, assay)
        Tracks already complete from an earlier run (their markers match their files).
    absent : list of (celltype, assay, path_or_url)
        Optional manifest rows whose file does not exist; left unobserved.
    failed : list of (celltype, assay, path_or_url, reason)
        Tracks that could not be ingested; left unobserved, their chunks erased.
    """

    store: str
    written: list = field(default_factory=list)
    skipped: list = field(default_factory=list)
    absent: list = field(default_factory=list)
    failed: list = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when no track failed."""
        return not self.failed

    def __str__(self) -> str:
        lines = [
            f"ingest into {self.store}: {len(self.written)} written, {len(self.skipped)} "
            f"already complete, {len(self.absent)} absent, {len(self.failed)} failed"
        ]
        lines += [f"  absent: {c}/{a}: {p}" for c, a, p in self.absent[:20]]
        if len(self.absent) > 20:
            lines.append(f"  ... and {len(self.absent) - 20} more absent")
        lines += [f"  FAILED: {c}/{a}: {p}: {r}" for c, a, p, r in self.failed]
        return "\n".join(lines)

    def open(self):
        """Open the store with :func:`avocado_xr.open_compendium`."""
        from .compendium import open_compendium

        return open_compendium(self.store)


@dataclass(frozen=True)
class _Job:
    """Everything a task needs about one track (small and picklable)."""

    store: str
    i: int
    j: int
    celltype: str
    assay: str
    source: str
    checksum: str
    optional: bool
    layout: Layout
    genome: Genome
    chrom_map: tuple
    extra_chroms: str
    missing_chroms: str
    gaps: str
    missing: object
    transform: str
    cache: str | None
    position_chunk: int


@dataclass(frozen=True)
class _Plan:
    ok: bool
    path: str = ""
    chroms: tuple = ()
    absent: bool = False
    reason: str = ""


def ingest(
    manifest,
    store: str | os.PathLike,
    *,
    genome,
    chroms=None,
    regions=None,
    region_rule: str = "avocado",
    missing="zero",
    transform: str | None = "arcsinh",
    gaps: str = "missing",
    chrom_map: Mapping[str, str] | None = None,
    extra_chroms: str = "ignore",
    missing_chroms: str = "missing",
    position_chunk: int = DEFAULT_POSITION_CHUNK,
    overwrite: bool = False,
    progress: bool = False,
    cache: str | os.PathLike | None = None,
    scheduler=None,
    on_error: str = "warn",
    attrs: dict | None = None,
    base_dir: str | os.PathLike | None = None,
) -> IngestReport:
    """Ingest the bigWig files of a manifest into a zarr compendium.

    Parameters
    ----------
    manifest : str, path or DataFrame
        The experiments (see :mod:`avocado_xr.manifest` for the TSV format). Cell types
        and assays are ordered by first appearance.
    store : str or path
        Target zarr (format 3) directory. An existing store made with the same settings is
        resumed; one made otherwise is an error unless ``overwrite=True``.
    genome : str, path, mapping or Genome
        The declared assembly: ``"hg19"``, ``"hg38"``, ``"dm3"`` or a chrom-sizes file.
        Every file's chromosome sizes are checked against it.
    chroms : list of str, optional
        Chromosomes to ingest, in this order. Default: all of the genome's (or, with
        ``regions``, all of the regions').
    regions : path, DataFrame or iterable of (chrom, start, end), optional
        Restrict to a BED region set; positions follow the regions' order. With the ENCODE
        pilot BED and the default ``region_rule`` this is exactly the layout of
        :func:`avocado_xr.datasets.roadmap_pilot`.
    region_rule : {"avocado", "overlap"}
        Which bins a region gets (see :meth:`avocado_xr.bigwig.Layout.from_regions`).
        Default ``"avocado"``: bins overlapping ``[start - 25, end]``.
    missing : {"zero", "nan"} or float
        Missing-value policy for bins with no covered base, applied before the transform.
        ``"zero"`` (default, the paper's recipe) writes 0; ``"nan"`` keeps NaN (such a track
        breaks ``validate(check_values=True)``); a number writes that number.
    transform : {"arcsinh", None}
        Applied after the missing-value policy. Default ``"arcsinh"`` (the paper's recipe,
        for -log10 p signal). ``None`` stores the values as read (e.g. files that already
        hold arcsinh values; pass ``attrs={"transform": "arcsinh"}`` to record that).
    gaps : {"missing", "zero"}
        Uncovered bases are left out of a bin's mean (default) or count as 0; see
        :mod:`avocado_xr.bigwig`.
    chrom_map : mapping, optional
        File chromosome name -> genome name, applied before the automatic ``chr``/``MT``
        rules (``None`` as a target ignores the file chromosome).
    extra_chroms : {"ignore", "error"}
        Policy for file chromosomes that are not in the genome. Default ``"ignore"``.
    missing_chroms : {"missing", "error"}
        Policy for ingested chromosomes absent from a file: read as uncovered (default,
        then ``missing`` applies) or fail that track.
    position_chunk : int
        Positions per zarr chunk and per task. Default is 131072 (2**17).
    overwrite : bool
        Delete an existing store first. Default is False (resume it).
    progress : bool
        Show progress (a Dask progress bar, or ``distributed.progress``). Default is False.
    cache : str or path, optional
        Download folder for URL rows (default: pooch's OS cache for ``avocado_xr``).
        pyBigWig reads local files only; downloads are checked against the manifest
        checksum when there is one.
    scheduler : str, optional
        Dask scheduler when no distributed client is active (e.g. ``"synchronous"``,
        ``"threads"``, ``"processes"``). Default: Dask's default.
    on_error : {"warn", "raise"}
        When tracks fail: warn with :class:`IngestWarning` (default) or raise
        :class:`IngestError` after all other tracks are done. Either way the report lists
        them.
    attrs : dict, optional
        Extra attributes for the store (they override the defaults, e.g. ``source``).
        For a genome that is not packaged, the sizes of the ingested chromosomes are
        recorded as ``chrom_sizes`` (``"chr1=1000,chr2=500"``) for bigWig export.
    base_dir : str or path, optional
        Folder that relative manifest paths are relative to (default: the manifest's).

    Returns
    -------
    IngestReport
        Tracks written, skipped (already complete), absent and failed.

    Raises
    ------
    ManifestError
        Malformed manifest, duplicate pairs, missing non-optional local files.
    IngestError
        The store exists with other settings (and ``overwrite`` is False); or tracks failed
        and ``on_error="raise"``.

    Examples
    --------
    >>> import tempfile, pyBigWig
    >>> from pathlib import Path
    >>> from avocado_xr.ingest import ingest
    >>> folder = Path(tempfile.mkdtemp())
    >>> bw = pyBigWig.open(str(folder / "a.bw"), "w")
    >>> bw.addHeader([("chr1", 1000)])
    >>> bw.addEntries("chr1", 0, values=[1.0, 2.0, 3.0], span=25, step=25)
    >>> bw.close()
    >>> text = "celltype\\tassay\\tpath_or_url\\nE003\\tH3K4me3\\ta.bw\\n"
    >>> _ = (folder / "m.tsv").write_text(text)
    >>> report = ingest(folder / "m.tsv", folder / "c.zarr",
    ...                 genome={"chr1": 1000}, transform=None, scheduler="synchronous")
    >>> print(report)
    ingest into ...c.zarr: 1 written, 0 already complete, 0 absent, 0 failed
    >>> report.open().signal.values[0, 0, :5]
    array([1., 2., 3., 0., 0.], dtype=float32)
    """
    if on_error not in ("warn", "raise"):
        raise ValueError(f"on_error must be 'warn' or 'raise', got {on_error!r}")
    if transform not in _TRANSFORMS:
        raise ValueError(f"transform must be 'arcsinh' or None, got {transform!r}")
    if not (missing in ("zero", "nan") or isinstance(missing, int | float)):
        raise ValueError(f"missing must be 'zero', 'nan' or a number, got {missing!r}")
    if gaps not in ("missing", "zero"):
        raise ValueError(f"gaps must be 'missing' or 'zero', got {gaps!r}")
    if int(position_chunk) <= 0:
        raise ValueError(f"position_chunk must be positive, got {position_chunk!r}")
    position_chunk = int(position_chunk)
    genome = genome_sizes(genome)
    layout = _layout_for(genome, chroms, regions, region_rule)
    table = read_manifest(manifest, base_dir=base_dir, check_paths=True)
    celltypes = list(dict.fromkeys(table["celltype"]))
    assays = list(dict.fromkeys(table["assay"]))
    transform_name = _TRANSFORMS[transform]
    settings = {
        "genome": genome.name,
        "chrom_sizes": {c: genome.sizes[c] for c in dict.fromkeys(layout.chroms)},
        "layout": layout.token(),
        "n_positions": layout.n_positions,
        "celltypes": celltypes,
        "assays": assays,
        "missing": missing,
        "transform": transform_name,
        "gaps": gaps,
        "chrom_map": dict(sorted((chrom_map or {}).items())),
        "extra_chroms": extra_chroms,
        "missing_chroms": missing_chroms,
        "position_chunk": position_chunk,
    }
    store = os.path.abspath(os.fspath(store))
    if os.path.exists(store) and overwrite:
        shutil.rmtree(store)
    if not _template_done(store, settings):
        _write_template(store, layout, genome, celltypes, assays, settings, transform_name, attrs)

    report = IngestReport(store)
    jobs = []
    for row in table.itertuples(index=False):
        job = _Job(
            store=store,
            i=celltypes.index(row.celltype),
            j=assays.index(row.assay),
            celltype=row.celltype,
            assay=row.assay,
            source=row.path_or_url,
            checksum=row.checksum,
            optional=bool(row.optional),
            layout=layout,
            genome=genome,
            chrom_map=tuple(sorted((chrom_map or {}).items())),
            extra_chroms=extra_chroms,
            missing_chroms=missing_chroms,
            gaps=gaps,
            missing=missing,
            transform=transform_name,
            cache=None if cache is None else os.fspath(cache),
            position_chunk=position_chunk,
        )
        if _read_marker(job) == _signature(job):
            report.skipped.append((job.celltype, job.assay))
        else:
            jobs.append(job)

    for status, job, detail in _run(jobs, layout, position_chunk, progress, scheduler):
        if status == "written":
            report.written.append((job.celltype, job.assay))
        elif status == "absent":
            report.absent.append((job.celltype, job.assay, job.source))
        else:
            report.failed.append((job.celltype, job.assay, job.source, detail))

    _write_observed(store, celltypes, assays, table)
    if report.failed:
        message = (
            f"{len(report.failed)} track(s) failed to ingest (left unobserved): "
            + "; ".join(f"{c}/{a} ({p}): {r}" for c, a, p, r in report.failed[:5])
            + ("" if len(report.failed) <= 5 else " ...")
            + ". Fix or remove those files and rerun: completed tracks are kept."
        )
        if on_error == "raise":
            raise IngestError(message)
        warnings.warn(message, IngestWarning, stacklevel=2)
    return report


# --------------------------------------------------------------------------------------
# store state


def _state_dir(store: str) -> Path:
    return Path(store) / _STATE


def _marker_dir(store: str, i: int, j: int) -> Path:
    return _state_dir(store) / f"track-{i}-{j}"


def _write_group(folder: Path, attributes: dict) -> None:
    """Write a zarr v3 group node holding ``attributes``, atomically (tmp file + rename).

    Ingest state lives in such groups so that zarr sees a valid hierarchy (a plain file or
    folder in a zarr store makes zarr warn when it lists the store).
    """
    folder.mkdir(parents=True, exist_ok=True)
    meta = {"zarr_format": 3, "node_type": "group", "attributes": attributes}
    tmp = folder / f"zarr.json.tmp{os.getpid()}"
    tmp.write_text(json.dumps(meta, sort_keys=True, indent=1))
    os.replace(tmp, folder / "zarr.json")


def _read_group(folder: Path) -> dict | None:
    try:
        return json.loads((folder / "zarr.json").read_text())["attributes"]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _template_done(store: str, settings: dict) -> bool:
    """True if ``store`` holds a complete template made with ``settings``."""
    if not os.path.exists(store):
        return False
    root, state = Path(store), _state_dir(store)
    previous = (_read_group(state) or {}).get("settings")
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


def _write_template(store, layout, genome, celltypes, assays, settings, transform_name, attrs):
    import dask.array as da

    from .compendium import make_compendium, save_compendium

    if os.path.exists(store):
        shutil.rmtree(store)
    chrom, start = layout.coords()
    shape = (len(celltypes), len(assays), layout.n_positions)
    chunk = settings["position_chunk"]
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
        attrs={"transform": transform_name, **_sizes_attr(genome, layout), **(attrs or {})},
    )
    save_compendium(ds, store, position_chunk=chunk, mode="w", compute=False)
    _state_dir(store).mkdir()  # marks the folder as ours before the template is complete
    _write_group(_state_dir(store), {"settings": settings})


def _sizes_attr(genome: Genome, layout: Layout) -> dict:
    """Chromosome sizes of a genome that is not packaged, for export's bigWig header."""
    if genome.name in KNOWN_GENOMES:
        return {}
    used = dict.fromkeys(layout.chroms)
    return {"chrom_sizes": ",".join(f"{c}={genome.sizes[c]}" for c in used)}


def _signature(job: _Job) -> dict:
    sig = {
        "celltype": job.celltype,
        "assay": job.assay,
        "source": job.source,
        "checksum": job.checksum,
    }
    if not is_url(job.source) and os.path.isfile(job.source):
        stat = os.stat(job.source)
        sig.update(size=stat.st_size, mtime_ns=stat.st_mtime_ns)
    return sig


def _read_marker(job: _Job) -> dict | None:
    return _read_group(_marker_dir(job.store, job.i, job.j))


def _write_observed(store: str, celltypes, assays, table) -> None:
    import zarr

    observed = np.zeros((len(celltypes), len(assays)), dtype=bool)
    for row in table.itertuples(index=False):
        i, j = celltypes.index(row.celltype), assays.index(row.assay)
        observed[i, j] = _read_group(_marker_dir(store, i, j)) is not None
    array = zarr.open_array(store, path="observed", mode="r+")
    array[...] = observed


# --------------------------------------------------------------------------------------
# tasks


def _prepare(job: _Job) -> _Plan:
    """Locate (download) and check one file; never raises."""
    try:
        if is_url(job.source):
            path = _download(job)
            if path is None:
                return _Plan(False, absent=True, reason="absent (HTTP 404)")
        else:
            path = job.source
            if not os.path.isfile(path):
                if job.optional:
                    return _Plan(False, absent=True, reason="absent")
                return _Plan(False, reason=f"{path}: no such file")
            verify_checksum(path, job.checksum)
        check_bigwig_file(path)
        bw = open_bigwig(path)
        try:
            file_chroms = dict(bw.chroms())
        finally:
            bw.close()
        matched = check_chroms(
            file_chroms,
            job.genome,
            job.layout.chroms,
            chrom_map=dict(job.chrom_map),
            extra_chroms=job.extra_chroms,
            missing_chroms=job.missing_chroms,
            path=path,
        )
        return _Plan(True, path=path, chroms=tuple(sorted(matched.items())))
    except (AvocadoXrError, OSError, RuntimeError, ValueError) as err:
        return _Plan(False, reason=str(err))


def _download(job: _Job) -> str | None:
    """Fetch a URL into the cache; None if the server says it does not exist."""
    import pooch
    import requests

    cache = job.cache or str(pooch.os_cache("avocado_xr") / "bigwig")
    known = job.checksum or None
    fname = quote(job.source.split("://", 1)[1], safe="")[-200:]
    try:
        return pooch.retrieve(
            job.source, known_hash=known, fname=fname, path=cache, progressbar=False
        )
    except requests.exceptions.HTTPError as err:
        status = getattr(err.response, "status_code", None)
        if job.optional and status in (404, 410):
            return None
        raise OSError(f"{job.source}: download failed ({err})") from err
    except ValueError as err:  # pooch's hash mismatch
        raise ManifestError(f"{job.source}: {err}") from err


def _transform(values: np.ndarray, missing, transform: str) -> np.ndarray:
    if missing == "zero":
        values = np.where(np.isnan(values), np.float32(0), values)
    elif missing != "nan":
        values = np.where(np.isnan(values), np.float32(missing), values)
    if transform == "arcsinh":
        values = np.arcsinh(values)
    return values.astype(np.float32, copy=False)


def _write_values(store: str, i: int, j: int, lo: int, values: np.ndarray) -> None:
    """Write one chunk of one track (the only place that writes signal)."""
    import zarr

    array = zarr.open_array(store, path="signal", mode="r+")
    array[i, j, lo : lo + len(values)] = values


def _block(job: _Job, plan: _Plan, lo: int, hi: int) -> str | None:
    """Read, bin, transform and write positions [lo, hi) of one track; returns an error."""
    if not plan.ok:
        return None
    try:
        values = BigWigArray(plan.path, job.layout, dict(plan.chroms), job.gaps).read(lo, hi)
        _write_values(job.store, job.i, job.j, lo, _transform(values, job.missing, job.transform))
    except (AvocadoXrError, OSError, RuntimeError, ValueError) as err:
        return f"positions {lo}-{hi}: {err}"
    return None


def _finish(job: _Job, plan: _Plan, errors: list) -> tuple[str, _Job, str]:
    """Mark a track complete, or erase its chunks and report why it failed."""
    errors = [e for e in errors if e]
    if plan.ok and not errors:
        _write_group(_marker_dir(job.store, job.i, job.j), _signature(job))
        return "written", job, ""
    _erase(job)
    if plan.absent:
        return "absent", job, plan.reason
    return "failed", job, plan.reason or errors[0]


def _erase(job: _Job) -> None:
    shutil.rmtree(_marker_dir(job.store, job.i, job.j), ignore_errors=True)
    meta = json.loads((Path(job.store) / "signal" / "zarr.json").read_text())
    encoding = meta.get("chunk_key_encoding", {})
    if (
        encoding.get("name") == "default"
        and encoding.get("configuration", {}).get("separator", "/") == "/"
    ):  # the track's chunks are the files under signal/c/<i>/<j>/
        shutil.rmtree(
            Path(job.store) / "signal" / "c" / str(job.i) / str(job.j), ignore_errors=True
        )
        return
    n = job.layout.n_positions
    for lo in range(0, n, job.position_chunk):
        hi = min(lo + job.position_chunk, n)
        _write_values(job.store, job.i, job.j, lo, np.full(hi - lo, np.nan, dtype=np.float32))


def _active_client():
    try:
        from distributed import get_client
    except ImportError:  # pragma: no cover - distributed is optional
        return None
    try:
        return get_client()
    except ValueError:
        return None


def _run(jobs, layout: Layout, chunk: int, progress: bool, scheduler):
    """Build and run the task graph in batches of tracks; yields _finish results."""
    import dask

    if not jobs:
        return
    n_blocks = -(-layout.n_positions // chunk)
    batch = max(1, 20_000 // (n_blocks + 2))
    client = _active_client() if scheduler is None else None
    for first in range(0, len(jobs), batch):
        finals = []
        for job in jobs[first : first + batch]:
            tag = f"{job.i}-{job.j}"
            plan = dask.delayed(_prepare, pure=False)(job, dask_key_name=f"ingest-prepare-{tag}")
            blocks = [
                dask.delayed(_block, pure=False)(
                    job,
                    plan,
                    lo,
                    min(lo + chunk, layout.n_positions),
                    dask_key_name=f"ingest-block-{tag}-{lo // chunk}",
                )
                for lo in range(0, layout.n_positions, chunk)
            ]
            finals.append(
                dask.delayed(_finish, pure=False)(
                    job, plan, blocks, dask_key_name=f"ingest-finish-{tag}"
                )
            )
        if client is not None:
            futures = client.compute(finals)
            if progress:
                from distributed import progress as show

                show(futures)
            results = client.gather(futures)
        elif progress:
            from dask.diagnostics import ProgressBar

            with ProgressBar():
                results = dask.compute(*finals, scheduler=scheduler)
        else:
            results = dask.compute(*finals, scheduler=scheduler)
        yield from results
