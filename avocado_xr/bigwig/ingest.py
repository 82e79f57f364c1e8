"""Ingest bigWig files listed in a manifest into a zarr compendium, resumably.

:func:`ingest` writes the compendium contract of DESIGN.md (``signal``, ``observed``,
``celltype``, ``assay``, ``chrom``, ``start``; attrs ``resolution``, ``genome``,
``transform``, ``source``) in three steps:

1. a *template* write (``compute=False``): metadata, coordinates and an all-False
   ``observed``; signal chunks (one track x one position block) are not written;
2. per track, one Dask task per *group* of consecutive position blocks (zarr chunks; about
   2**20 positions a task) that opens the bigWig and the zarr array once, then block by block
   reads and bins (see :mod:`avocado_xr.bigwig.reader` for the binning rule), applies the
   missing-value policy and the transform, and writes exactly that zarr chunk (a
   non-overlapping region write), on the active ``dask.distributed`` client if there is one,
   else on the local scheduler;
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

import os
import shutil
import warnings
from dataclasses import dataclass, field
from functools import partial
from urllib.parse import quote

import numpy as np

from ..assembly import Genome, genome_sizes
from ..exceptions import (
    AvocadoXrError,
    BigWigReadError,
    ConfigError,
    IngestError,
    IngestWarning,
    ManifestError,
)
from ..genome import GenomeLayout
from ._store import (
    erase_track,
    marker_dir,
    open_signal,
    read_group,
    template_done,
    write_group,
    write_observed,
    write_template,
)
from ._store import write_values as _write_values  # module-level, so tests can intercept it
from .manifest import is_url, read_manifest, verify_checksum
from .options import IngestOptions
from .reader import BigWigArray, file_chroms, layout_for

__all__ = ["ON_ERROR", "IngestReport", "ingest"]

#: what :func:`ingest` does when tracks fail
ON_ERROR = ("warn", "raise")

#: positions one task reads and writes (whole chunks, at least one): large enough that the
#: per-task costs (scheduling, opening the bigWig and the zarr array) are a few percent,
#: small enough to spread a few tracks over many workers
TASK_POSITIONS = 2**20


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
        from ..store import open_compendium

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
    options: IngestOptions
    genome: Genome
    layout: GenomeLayout
    cache: str | None


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
    options: IngestOptions | None = None,
    overwrite: bool = False,
    progress: bool = False,
    cache: str | os.PathLike | None = None,
    scheduler=None,
    on_error: str = "warn",
    attrs: dict | None = None,
    base_dir: str | os.PathLike | None = None,
    **settings,
) -> IngestReport:
    """Ingest the bigWig files of a manifest into a zarr compendium.

    Parameters
    ----------
    manifest : str, path or DataFrame
        The experiments (see :mod:`avocado_xr.bigwig.manifest` for the TSV format). Cell
        types and assays are ordered by first appearance.
    store : str or path
        Target zarr (format 3) directory. An existing store made with the same options is
        resumed; one made otherwise is an error unless ``overwrite=True``.
    options : IngestOptions, optional
        The ingest options (genome, positions, missing-value policy, transform, ...);
        keyword arguments named like its fields override it, e.g. ``genome="hg19",
        regions="pilot.bed", missing="zero"``. ``genome`` is required. See
        :class:`~avocado_xr.bigwig.options.IngestOptions` for every option and its default.
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
        When tracks fail: warn with :class:`~avocado_xr.exceptions.IngestWarning` (default)
        or raise :class:`~avocado_xr.exceptions.IngestError` after all other tracks are
        done. Either way the report lists them.
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
    ConfigError
        An unknown or invalid option.
    IngestError
        The store exists with other settings (and ``overwrite`` is False); or tracks failed
        and ``on_error="raise"``.

    Examples
    --------
    >>> import tempfile, pyBigWig
    >>> from pathlib import Path
    >>> import avocado_xr as ax
    >>> folder = Path(tempfile.mkdtemp())
    >>> bw = pyBigWig.open(str(folder / "a.bw"), "w")
    >>> bw.addHeader([("chr1", 1000)])
    >>> bw.addEntries("chr1", 0, values=[1.0, 2.0, 3.0], span=25, step=25)
    >>> bw.close()
    >>> text = "celltype\\tassay\\tpath_or_url\\nE003\\tH3K4me3\\ta.bw\\n"
    >>> _ = (folder / "m.tsv").write_text(text)
    >>> report = ax.ingest(folder / "m.tsv", folder / "c.zarr",
    ...                    genome={"chr1": 1000}, transform=None, scheduler="synchronous")
    >>> print(report)
    ingest into ...c.zarr: 1 written, 0 already complete, 0 absent, 0 failed
    >>> report.open().signal.values[0, 0, :5]
    array([1., 2., 3., 0., 0.], dtype=float32)
    """
    if on_error not in ON_ERROR:
        raise ConfigError(f"on_error must be one of {ON_ERROR}, got {on_error!r}")
    options = IngestOptions(**settings) if options is None else options.replace(**settings)
    genome = genome_sizes(options.genome)
    layout = layout_for(genome, options.chroms, options.regions, options.region_rule)
    table = read_manifest(manifest, base_dir=base_dir, check_paths=True)
    celltypes = list(dict.fromkeys(table["celltype"]))
    assays = list(dict.fromkeys(table["assay"]))
    fingerprint = {
        "genome": genome.name,
        "chrom_sizes": layout.sizes,
        "layout": layout.token(),
        "n_positions": layout.n_positions,
        "celltypes": celltypes,
        "assays": assays,
        **options.fingerprint(),
    }
    store = os.path.abspath(os.fspath(store))
    if os.path.exists(store) and overwrite:
        shutil.rmtree(store)
    if not template_done(store, fingerprint):
        write_template(store, layout, genome, celltypes, assays, fingerprint, options, attrs)

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
            options=options,
            genome=genome,
            layout=layout,
            cache=None if cache is None else os.fspath(cache),
        )
        if _read_marker(job) == _signature(job):
            report.skipped.append((job.celltype, job.assay))
        else:
            jobs.append(job)

    for status, job, detail in _run(jobs, layout, options.position_chunk, progress, scheduler):
        if status == "written":
            report.written.append((job.celltype, job.assay))
        elif status == "absent":
            report.absent.append((job.celltype, job.assay, job.source))
        else:
            report.failed.append((job.celltype, job.assay, job.source, detail))

    write_observed(store, celltypes, assays, table)
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
# track identity


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
    return read_group(marker_dir(job.store, job.i, job.j))


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
        opts = job.options
        matched = file_chroms(
            path,
            job.genome,
            job.layout,
            chrom_map=dict(opts.chrom_map),
            extra_chroms=opts.extra_chroms,
            missing_chroms=opts.missing_chroms,
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
        raise BigWigReadError(f"{job.source}: download failed ({err})") from err
    except ValueError as err:  # pooch's hash mismatch
        raise ManifestError(f"{job.source}: {err}") from err


def _transform(values: np.ndarray, missing, transform: str) -> np.ndarray:
    """Missing-value policy, then the transform, in place on a float32 array we own."""
    if missing == "zero":
        np.copyto(values, np.float32(0), where=np.isnan(values))
    elif missing != "nan":
        np.copyto(values, np.float32(missing), where=np.isnan(values))
    if transform == "arcsinh":
        np.arcsinh(values, out=values)
    return values


def _blocks(job: _Job, plan: _Plan, bounds: tuple) -> str | None:
    """Read, bin, transform and write blocks ``bounds`` ((lo, hi), ...) of one track, each
    into its own zarr chunk; returns an error, or None."""
    if not plan.ok:
        return None
    opts = job.options
    lo, hi = bounds[0]
    try:
        array = BigWigArray(plan.path, job.layout, dict(plan.chroms), opts.gaps)
        signal = open_signal(job.store)
        with array.open() as track:
            for lo, hi in bounds:
                values = _transform(track.read(lo, hi), opts.missing, opts.transform)
                _write_values(signal, job.i, job.j, lo, values)
    except (AvocadoXrError, OSError, RuntimeError, ValueError) as err:
        return f"positions {lo}-{hi}: {err}"
    return None


def _groups(n_positions: int, chunk: int) -> list[tuple]:
    """Chunk bounds ((lo, hi), ...) split into even groups of about TASK_POSITIONS."""
    bounds = [(lo, min(lo + chunk, n_positions)) for lo in range(0, n_positions, chunk)]
    n_groups = -(-len(bounds) // max(1, TASK_POSITIONS // chunk))
    size = -(-len(bounds) // max(n_groups, 1))
    return [tuple(bounds[k : k + size]) for k in range(0, len(bounds), size)]


def _finish(job: _Job, plan: _Plan, errors: list) -> tuple[str, _Job, str]:
    """Mark a track complete, or erase its chunks and report why it failed."""
    errors = [e for e in errors if e]
    if plan.ok and not errors:
        write_group(marker_dir(job.store, job.i, job.j), _signature(job))
        return "written", job, ""
    erase_track(job.store, job.i, job.j, job.layout.n_positions, job.options.position_chunk)
    if plan.absent:
        return "absent", job, plan.reason
    return "failed", job, plan.reason or errors[0]


def _active_client():
    try:
        from distributed import get_client
    except ImportError:  # pragma: no cover - distributed is optional
        return None
    try:
        return get_client()
    except ValueError:
        return None


def _run(jobs, layout: GenomeLayout, chunk: int, progress: bool, scheduler):
    """Build and run the task graph in batches of tracks; yields _finish results."""
    import dask

    if not jobs:
        return
    groups = _groups(layout.n_positions, chunk)
    batch = max(1, 20_000 // (len(groups) + 2))
    client = _active_client() if scheduler is None else None
    for first in range(0, len(jobs), batch):
        finals = []
        for job in jobs[first : first + batch]:
            tag = f"{job.i}-{job.j}"

            def task(func, key, *args, job=job):
                # the job is bound to the function, so Dask does not walk its fields
                return dask.delayed(partial(func, job), pure=False)(*args, dask_key_name=key)

            plan = task(_prepare, f"ingest-prepare-{tag}")
            blocks = [
                task(_blocks, f"ingest-block-{tag}-{k}", plan, bounds)
                for k, bounds in enumerate(groups)
            ]
            finals.append(task(_finish, f"ingest-finish-{tag}", plan, blocks))
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
