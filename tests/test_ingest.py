"""Ingestion: contract, real files, failures, resumability (kill and rerun), pilot layout."""

from __future__ import annotations

import functools
import http.server
import os
import subprocess
import sys
import textwrap
import threading
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd
import pyBigWig
import pytest
import xarray as xr
from _helpers import write_bw

import avocado_xr as ax
from avocado_xr.assembly import genome_sizes
from avocado_xr.bigwig.ingest import ingest
from avocado_xr.exceptions import IngestError, IngestWarning, ManifestError

PILOT_BED = str(resources.files("avocado_xr") / "data" / "encode_pilot_regions.hg19.bed")
SMALL = {"chr1": 40_000, "chr2": 23_012}


def random_track(path, chroms, seed):
    """Records of random spans (1 to 300 bp) with gaps, on every chromosome."""
    rng = np.random.default_rng(seed)
    records = []
    for chrom, size in chroms.items():
        pos = int(rng.integers(0, 50))
        while pos < size:
            span = int(rng.integers(1, 300))
            if rng.random() < 0.8:
                records.append((chrom, pos, min(pos + span, size), rng.gamma(1.0, 3.0)))
            pos += span
    return write_bw(path, chroms, records)


def manifest(folder, rows, name="m.tsv", optional=False):
    text = "celltype\tassay\tpath_or_url\toptional\n" + "".join(
        f"{c}\t{a}\t{p}\t{str(optional).lower()}\n" for c, a, p in rows
    )
    path = Path(folder) / name
    path.write_text(text)
    return path


def independent(path, file_chrom, lo, hi):
    """Paper recipe computed independently: per-base array from intervals, mean, 0, arcsinh."""
    base = np.full(hi - lo, np.nan)
    bw = pyBigWig.open(str(path))
    if file_chrom in bw.chroms():
        for s, e, v in bw.intervals(file_chrom, lo, hi) or ():
            base[max(s, lo) - lo : min(e, hi) - lo] = v
    bw.close()
    bins = base.reshape(-1, 25)
    n = np.isfinite(bins).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(n > 0, np.nansum(bins, axis=1) / n, 0.0)
    return np.arcsinh(mean).astype(np.float32)


def tree_bytes(store):
    store = Path(store)
    return {
        str(p.relative_to(store)): p.read_bytes() for p in sorted(store.rglob("*")) if p.is_file()
    }


@pytest.fixture
def small_files(tmp_path):
    folder = tmp_path / "bw"
    folder.mkdir()
    rows = []
    for k, (c, a) in enumerate([("C0", "A0"), ("C0", "A1"), ("C1", "A0"), ("C1", "A1")]):
        rows.append((c, a, random_track(folder / f"{c}.{a}.bw", SMALL, seed=k)))
    return folder, rows


# --------------------------------------------------------------------------- contract


def test_ingest_writes_the_compendium_contract(tmp_path, small_files):
    folder, rows = small_files
    m = manifest(folder, rows[:3])  # (C1, A1) is never listed: unobserved
    report = ingest(m, tmp_path / "c.zarr", genome=SMALL, position_chunk=512)
    assert report.ok and len(report.written) == 3 and "3 written" in str(report)
    ds = ax.open_compendium(tmp_path / "c.zarr")
    ax.validate(ds, check_values=True)
    assert ds.signal.dtype == np.float32 and ds.signal.encoding["chunks"] == (1, 1, 512)
    assert ds.attrs["resolution"] == 25 and ds.attrs["genome"] == "custom"
    assert ds.attrs["transform"] == "arcsinh" and "avocado_xr" in ds.attrs["source"]
    assert ds.observed.values.tolist() == [[True, True], [True, False]]
    assert ds.sizes["position"] == 1_600 + 921  # chr2's last bin is 12 bp
    assert ds.start.values[-1] == 23_000 and ds.chrom.values[-1] == "chr2"
    for c, a, path in rows[:3]:
        got = ds.signal.sel(celltype=c, assay=a).values
        want = np.concatenate([independent(path, "chr1", 0, 40_000), _chr2(path)])
        np.testing.assert_allclose(got, want, rtol=1e-6)
    assert not (tmp_path / "c.zarr" / "signal" / "c" / "1" / "1").exists()  # never written


def _chr2(path):
    size = SMALL["chr2"]
    whole = independent(path, "chr2", 0, size // 25 * 25)
    bw = pyBigWig.open(str(path))
    tail = bw.values("chr2", size // 25 * 25, size, numpy=True)
    bw.close()
    last = np.arcsinh(np.nanmean(tail) if np.isfinite(tail).any() else 0).astype(np.float32)
    return np.concatenate([whole, [last]])


def test_missing_policy_transform_and_gaps_are_explicit(tmp_path):
    path = write_bw(tmp_path / "a.bw", {"chr1": 100}, [("chr1", 0, 10, 3.0), ("chr1", 50, 75, 2)])
    m = manifest(tmp_path, [("C", "A", path)])
    kw = dict(genome={"chr1": 100}, position_chunk=2)
    s = ingest(m, tmp_path / "a.zarr", missing="nan", transform=None, **kw).open()
    np.testing.assert_array_equal(s.signal.values[0, 0], [3, np.nan, 2, np.nan])
    s = ingest(m, tmp_path / "b.zarr", missing=-1.0, transform=None, gaps="zero", **kw).open()
    np.testing.assert_array_equal(s.signal.values[0, 0], np.float32([1.2, 0, 2, 0]))
    s = ingest(m, tmp_path / "c.zarr", **kw).open()
    np.testing.assert_array_equal(s.signal.values[0, 0], np.arcsinh([3, 0, 2, 0]).astype("f4"))
    assert s.attrs["transform"] == "arcsinh"
    assert ingest(m, tmp_path / "d.zarr", transform=None, **kw).open().attrs["transform"] == "none"
    with pytest.raises(ValueError, match="missing must be"):
        ingest(m, tmp_path / "e.zarr", missing="drop", **kw)


def test_all_nan_blocks_of_an_observed_track_are_stored(tmp_path):
    """missing="nan" on a partly covered file: a block with no covered base is all NaN, the
    fill value, yet its chunk is written, so reads do not take it for a lost chunk."""
    path = write_bw(tmp_path / "a.bw", {"chr1": 1_000}, [("chr1", 0, 100, 1.0)])
    m = manifest(tmp_path, [("C", "A", path)])
    genome = {"chr1": 1_000, "chr2": 1_000}
    report = ingest(m, tmp_path / "a.zarr", genome=genome, missing="nan", position_chunk=16)
    assert report.ok
    chunks = sorted(p.name for p in (tmp_path / "a.zarr" / "signal" / "c" / "0" / "0").iterdir())
    assert len(chunks) == 5  # 80 positions, 16 a chunk: all written, NaN ones too
    values = report.open().signal.values[0, 0]
    assert (values[:4] == np.arcsinh(np.float32(1))).all() and np.isnan(values[4:]).all()


# --------------------------------------------------------------------------- real files


def test_real_bigwigs_ingest_like_the_independent_computation(shared_data, tmp_path):
    bw = shared_data / "bigwig"
    cases = {
        "hg19": (
            [
                ("H1", "H3K4me3", bw / "trackplot_H1_H3K4me3_hg19_POU5F1.bw"),
                ("H1", "H3K4me1", bw / "trackplot_H1_H3K4me1_hg19_POU5F1.bw"),
                ("GM12878", "STAT1", bw / "sevenC_GM12878_Stat1.chr22_1-30000000.hg19.bigWig"),
            ],
            [("chr6", 31_120_000, 31_150_000), ("chr22", 16_000_000, 17_000_000)],
        ),
        "hg38": (
            [("X", "signal", bw / "bigtools_valid.chr17.bigWig")],
            [("chr17", 50_000, 220_000)],
        ),
        "dm3": (
            [("fly", "signal", bw / "pyGenomeTracks_bigwig3_X_2.5e6_3.5e6.dm3.bw")],
            [("chr2L", 0, 1_000), ("chrX", 2_490_000, 3_510_000)],
        ),
    }
    for genome, (rows, regions) in cases.items():
        store = tmp_path / f"{genome}.zarr"
        report = ingest(
            manifest(tmp_path, rows, name=f"{genome}.tsv"),
            store,
            genome=genome,
            regions=regions,
            region_rule="overlap",
        )
        assert report.ok and len(report.written) == len(rows), str(report)
        ds = ax.open_compendium(store)
        assert ds.attrs["genome"] == genome
        for c, a, path in rows:
            got = ds.signal.sel(celltype=c, assay=a).values
            file_chroms = pyBigWig.open(str(path)).chroms()
            want = []
            for chrom, lo, hi in regions:
                name = chrom if chrom in file_chroms else chrom[3:]
                want.append(independent(path, name, lo, hi))
            np.testing.assert_allclose(got, np.concatenate(want), rtol=1e-6, err_msg=str(path))
            assert (got > 0).sum() > 50


# --------------------------------------------------------------------------- failures


def test_bad_files_fail_alone_and_are_named(shared_data, tmp_path, small_files):
    folder, rows = small_files
    good = rows[0][2]
    truncated = tmp_path / "cut.bw"
    truncated.write_bytes(Path(good).read_bytes()[:-100])
    text = tmp_path / "table.bedGraph"
    text.write_text("chr1\t0\t100\t1\n")
    other = shared_data / "bigwig" / "bigtools_valid.chr17.bigWig"
    empty = write_bw(tmp_path / "empty.bw", SMALL, [("chr1", 0, 25, 5.0)])  # chr2 is empty
    m = manifest(
        tmp_path,
        [
            ("C0", "A0", good),
            ("C0", "A1", truncated),
            ("C1", "A0", text),
            ("C1", "A1", empty),
            ("C2", "A0", other),
        ],
    )
    genome = {**SMALL, "chr17": 81_195_210}  # chr17 of hg19: the hg38 file's is longer
    kw = dict(
        genome=genome,
        position_chunk=512,
        region_rule="overlap",
        regions=[("chr1", 0, 40_000), ("chr2", 0, 23_012), ("chr17", 0, 1_000)],
    )
    with pytest.warns(IngestWarning, match="3 track"):
        report = ingest(m, tmp_path / "c.zarr", **kw)
    failed = {(c, a): (p, r) for c, a, p, r in report.failed}
    assert set(failed) == {("C0", "A1"), ("C1", "A0"), ("C2", "A0")}
    assert "cut.bw" in failed[("C0", "A1")][1] and "truncated" in failed[("C0", "A1")][1]
    assert "table.bedGraph" in failed[("C1", "A0")][1] and "not a bigWig" in failed[("C1", "A0")][1]
    assert "chr17" in failed[("C2", "A0")][1] and "genome='hg38'" in failed[("C2", "A0")][1]
    assert "cut.bw" in str(report)
    ds = ax.open_compendium(tmp_path / "c.zarr")
    assert ds.observed.values.tolist() == [[True, False], [False, True], [False, False]]
    ax.validate(ds, check_values=True)  # failed tracks are all NaN again
    alone = ingest(
        manifest(tmp_path, [("C0", "A0", good)], name="one.tsv"),
        tmp_path / "one.zarr",
        **kw,
    ).open()
    np.testing.assert_array_equal(
        ds.signal.sel(celltype="C0", assay="A0").values, alone.signal.values[0, 0]
    )
    empty_track = ds.signal.sel(celltype="C1", assay="A1")
    assert empty_track.values[0] == np.arcsinh(np.float32(5.0))
    assert (empty_track.where(empty_track.chrom == "chr2", drop=True) == 0).all()
    with pytest.raises(IngestError, match="cut.bw"):
        ingest(m, tmp_path / "c.zarr", on_error="raise", **kw)


def test_missing_file_and_duplicates_stop_before_writing(tmp_path, small_files):
    folder, rows = small_files
    m = manifest(tmp_path, [rows[0], ("C9", "A9", tmp_path / "nope.bw")])
    with pytest.raises(ManifestError, match="nope.bw does not exist"):
        ingest(m, tmp_path / "c.zarr", genome=SMALL)
    m = manifest(tmp_path, [rows[0], rows[1], rows[0]])
    with pytest.raises(ManifestError, match=r"\('C0', 'A0'\) is listed twice"):
        ingest(m, tmp_path / "c.zarr", genome=SMALL)
    assert not (tmp_path / "c.zarr").exists()


def test_absent_optional_files_are_reported_and_skipped(tmp_path, small_files):
    folder, rows = small_files
    m = manifest(tmp_path, [rows[0], ("C9", "A9", tmp_path / "nope.bw")], optional=True)
    report = ingest(m, tmp_path / "c.zarr", genome=SMALL, position_chunk=1024)
    assert report.ok and report.absent == [("C9", "A9", str(tmp_path / "nope.bw"))]
    assert "1 absent" in str(report)
    assert report.open().observed.values.tolist() == [[True, False], [False, False]]


def test_chromosome_policies(tmp_path):
    path = write_bw(tmp_path / "a.bw", {"1": 1_000, "Un1": 50}, [("1", 0, 50, 1.0)])
    m = manifest(tmp_path, [("C", "A", path)])
    genome = {"chr1": 1_000, "chr2": 500}
    ds = ingest(m, tmp_path / "a.zarr", genome=genome, transform=None).open()
    assert ds.signal.values[0, 0, :3].tolist() == [1, 1, 0] and ds.observed.all()
    with pytest.warns(IngestWarning, match="'Un1'"):
        ingest(m, tmp_path / "b.zarr", genome=genome, extra_chroms="error")
    with pytest.warns(IngestWarning, match=r"no chromosome \['chr2'\]"):
        ingest(m, tmp_path / "c.zarr", genome=genome, missing_chroms="error")
    chr2 = ds.signal.values[0, 0, 40:]  # absent from the file: read as uncovered, missing -> 0
    assert ds.sizes["position"] == 60 and chr2.size == 20 and (chr2 == 0).all()
    kw = dict(genome=genome, missing="nan", transform=None)
    assert np.isnan(ingest(m, tmp_path / "f.zarr", **kw).open().signal.values[0, 0, 40:]).all()
    assert (ingest(m, tmp_path / "g.zarr", gaps="zero", **kw).open().signal[..., 40:] == 0).all()
    with pytest.warns(IngestWarning, match="shares no chromosome"):  # only chr2 is read
        alone = ingest(m, tmp_path / "d.zarr", genome=genome, chroms=["chr2"])
    assert alone.failed[0][3].startswith(str(path)) and not alone.open().observed.any()
    with pytest.warns(IngestWarning, match="1,000 bp"):
        renamed = ingest(m, tmp_path / "e.zarr", genome=genome, chrom_map={"1": "chr2"})
    assert renamed.failed[0][3].startswith(str(path))


def test_files_sharing_no_chromosome_with_the_layout_fail_alone(tmp_path):
    """Issue 12: a file of another assembly, or of none of the chromosomes read, must fail
    (its track only, named); a file covering some of the chromosomes read is ingested."""
    genome = {"chr1": 1_000, "chr2": 500, "chr3": 700}
    good = write_bw(tmp_path / "good.bw", genome, [("chr1", 0, 50, 2.0), ("chr2", 0, 25, 3.0)])
    partial = write_bw(tmp_path / "partial.bw", {"chr1": 1_000}, [("chr1", 25, 75, 4.0)])
    fly = write_bw(tmp_path / "fly.bw", {"2L": 5_000}, [("2L", 0, 25, 1.0)])
    other = write_bw(tmp_path / "other.bw", {"chr3": 800}, [("chr3", 0, 25, 1.0)])
    rows = [("C0", "A0", good), ("C0", "A1", partial), ("C1", "A0", fly), ("C1", "A1", other)]
    kw = dict(genome=genome, chroms=["chr1", "chr2"], transform=None, position_chunk=16)
    with pytest.warns(IngestWarning, match="2 track"):
        report = ingest(manifest(tmp_path, rows), tmp_path / "c.zarr", **kw)
    assert report.written == [("C0", "A0"), ("C0", "A1")] and "2 failed" in str(report)
    failed = {(c, a): reason for c, a, _, reason in report.failed}
    assert failed[("C1", "A0")].startswith(str(fly))
    assert "shares no chromosome" in failed[("C1", "A0")] and "'custom'" in failed[("C1", "A0")]
    assert "regions= or chroms=" in failed[("C1", "A0")]  # what to pass instead
    assert failed[("C1", "A1")].startswith(str(other)) and "800 bp" in failed[("C1", "A1")]
    assert "another assembly" in failed[("C1", "A1")]
    ds = report.open()
    assert ds.observed.values.tolist() == [[True, True], [False, False]]
    ax.validate(ds, check_values=True)  # the failed tracks hold no value
    values = ds.signal.values
    assert values[0, 1, :4].tolist() == [0, 4, 4, 0] and (values[0, 1, 40:] == 0).all()
    alone = ingest(manifest(tmp_path, rows[:1], name="one.tsv"), tmp_path / "one.zarr", **kw)
    np.testing.assert_array_equal(values[0, 0], alone.open().signal.values[0, 0])
    with pytest.raises(IngestError, match="fly.bw"):
        ingest(manifest(tmp_path, rows), tmp_path / "c.zarr", on_error="raise", **kw)


def test_real_files_of_another_assembly_fail_and_partial_coverage_ingests(shared_data, tmp_path):
    bw = shared_data / "bigwig"
    fly = bw / "pyGenomeTracks_bigwig3_X_2.5e6_3.5e6.dm3.bw"  # X and 2L of dm3
    chr17 = bw / "bigtools_valid.chr17.bigWig"  # chr17 of hg38 (83,257,441 bp)
    chr22 = bw / "sevenC_GM12878_Stat1.chr22_1-30000000.hg19.bigWig"  # chr22 of hg19 only
    rows = [("fly", "S", fly), ("X", "S", chr17), ("GM12878", "S", chr22)]
    regions = [("chr21", 9_400_000, 9_500_000), ("chr22", 16_000_000, 17_000_000)]
    with pytest.warns(IngestWarning, match="2 track"):
        report = ingest(
            manifest(tmp_path, rows),
            tmp_path / "c.zarr",
            genome="hg19",
            regions=regions,
            region_rule="overlap",
        )
    assert report.written == [("GM12878", "S")]
    failed = {c: reason for c, _, _, reason in report.failed}
    for cell, path, right in (("fly", fly, "dm3"), ("X", chr17, "hg38")):
        assert failed[cell].startswith(str(path)), failed[cell]
        assert "genome 'hg19'" in failed[cell] and f"pass genome='{right}'" in failed[cell]
    ds = report.open()
    assert ds.observed.values.tolist() == [[False], [False], [True]]
    got = ds.signal.sel(celltype="GM12878", assay="S").values
    assert (got[:4_000] == 0).all()  # chr21: not in the file, read as uncovered
    want = independent(chr22, "chr22", 16_000_000, 17_000_000)
    np.testing.assert_allclose(got[4_000:], want, rtol=1e-6)
    assert (got[4_000:] > 0).sum() > 1_000


# --------------------------------------------------------------------------- resume


def test_rerun_skips_complete_tracks_and_checks_settings(tmp_path, small_files):
    folder, rows = small_files
    m = manifest(folder, rows)
    store = tmp_path / "c.zarr"
    first = ingest(m, store, genome=SMALL, position_chunk=512)
    before = tree_bytes(store)
    again = ingest(m, store, genome=SMALL, position_chunk=512)
    assert again.written == [] and len(again.skipped) == 4
    assert tree_bytes(store) == before
    os.utime(rows[1][2], ns=(1, 1))  # a changed file is ingested again
    assert ingest(m, store, genome=SMALL, position_chunk=512).written == [rows[1][:2]]
    with pytest.raises(IngestError, match="position_chunk"):
        ingest(m, store, genome=SMALL, position_chunk=256)
    redo = ingest(m, store, genome=SMALL, position_chunk=256, overwrite=True)
    assert len(redo.written) == 4 and len(first.written) == 4
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "keep.txt").write_text("x")
    with pytest.raises(IngestError, match="not made by avocado_xr.ingest"):
        ingest(m, tmp_path / "other", genome=SMALL)


CRASH = """
import os, sys
import avocado_xr.bigwig.ingest

ing = sys.modules["avocado_xr.bigwig.ingest"]  # the module, even where ax.ingest is the function

limit, calls = int(sys.argv[3]), [0]
original = ing._write_values

def crashing(*args, **kwargs):
    calls[0] += 1
    if calls[0] > limit:
        os._exit(17)  # a hard kill in the middle of the ingest
    return original(*args, **kwargs)

ing._write_values = crashing
ing.ingest(sys.argv[1], sys.argv[2], genome={genome!r}, position_chunk=512,
           scheduler="synchronous")
"""


def test_kill_and_rerun_gives_an_identical_store(tmp_path, small_files):
    folder, rows = small_files
    m = manifest(folder, rows)
    script = tmp_path / "crash.py"
    script.write_text(textwrap.dedent(CRASH.format(genome=SMALL)))
    killed = tmp_path / "killed.zarr"
    run = subprocess.run(
        [sys.executable, str(script), str(m), str(killed), "12"], capture_output=True, text=True
    )
    assert run.returncode == 17, run.stderr
    markers = sorted((killed / ".avocado_ingest").glob("track-*"))
    assert 0 < len(markers) < 4  # killed mid-ingest: some tracks done, one partial
    assert not ax.open_compendium(killed).observed.any()  # not finalized yet
    report = ingest(m, killed, genome=SMALL, position_chunk=512)
    assert len(report.skipped) == len(markers) and len(report.written) == 4 - len(markers)
    clean = tmp_path / "clean.zarr"
    ingest(m, clean, genome=SMALL, position_chunk=512)
    assert tree_bytes(killed) == tree_bytes(clean)
    xr.testing.assert_identical(ax.open_compendium(killed).load(), ax.open_compendium(clean).load())


# --------------------------------------------------------------------------- schedulers


def test_runs_on_the_active_distributed_client(tmp_path, small_files):
    distributed = pytest.importorskip("distributed")
    folder, rows = small_files
    m = manifest(folder, rows)
    local = ingest(m, tmp_path / "local.zarr", genome=SMALL, position_chunk=512)
    with distributed.Client(
        processes=False, n_workers=1, threads_per_worker=2, dashboard_address=":0"
    ) as client:
        dist = ingest(m, tmp_path / "dist.zarr", genome=SMALL, position_chunk=512)
        assert any(k.startswith("ingest-finish") for k in _task_keys(client))
    assert len(dist.written) == len(local.written) == 4
    assert tree_bytes(tmp_path / "dist.zarr") == tree_bytes(tmp_path / "local.zarr")


def _task_keys(client):
    log = client.run_on_scheduler(
        lambda dask_scheduler: [str(t) for t in dask_scheduler.task_prefixes]
    )
    return log


def test_urls_are_downloaded_and_absent_ones_skipped(tmp_path, small_files):
    folder, rows = small_files
    handler = functools.partial(_QuietHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        m = manifest(
            tmp_path,
            [("C0", "A0", f"{url}/C0.A0.bw"), ("C9", "A9", f"{url}/none.bw")],
            optional=True,
        )
        report = ingest(m, tmp_path / "c.zarr", genome=SMALL, cache=tmp_path / "cache")
    finally:
        server.shutdown()
        server.server_close()
    assert report.written == [("C0", "A0")] and report.absent[0][:2] == ("C9", "A9")
    local = ingest(manifest(tmp_path, rows[:1], name="l.tsv"), tmp_path / "l.zarr", genome=SMALL)
    np.testing.assert_array_equal(
        report.open().signal.values[0, 0], local.open().signal.values[0, 0]
    )


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


# --------------------------------------------------------------------------- the pilot


def write_pilot_bigwig(path, track, regions):
    """A bigWig holding one pilot track's values at its true hg19 25-bp bins."""
    bw = pyBigWig.open(str(path), "w")
    bw.addHeader(list(genome_sizes("hg19").sizes.items()))
    for r in regions.itertuples():
        values = track[r.offset : r.offset + r.n_bins].astype(np.float64)
        bw.addEntries(r.chrom, int(r.first_bin_start), values=values, span=25, step=25)
    bw.close()
    return path


def check_pilot(pilot, tmp_path, pairs):
    regions = ax.datasets.pilot_regions()
    rows = []
    for c, a in pairs:
        track = pilot.signal.sel(celltype=c, assay=a).values
        rows.append((c, a, write_pilot_bigwig(tmp_path / f"{c}.{a}.bw", track, regions)))
    report = ingest(
        manifest(tmp_path, rows),
        tmp_path / "pilot.zarr",
        genome="hg19",
        regions=PILOT_BED,
        transform=None,  # the files hold the arcsinh values already
        attrs={"transform": "arcsinh"},
    )
    assert report.ok and len(report.written) == len(pairs)
    ds = ax.open_compendium(tmp_path / "pilot.zarr").load()
    assert ds.sizes["position"] == pilot.sizes["position"] == 1_126_469
    np.testing.assert_array_equal(ds.chrom.values, pilot.chrom.values)
    np.testing.assert_array_equal(ds.start.values, pilot.start.values)
    for key in ("resolution", "genome", "transform"):
        assert ds.attrs[key] == pilot.attrs[key]
    for c, a in pairs:
        np.testing.assert_array_equal(  # exactly equal, float32 bits
            ds.signal.sel(celltype=c, assay=a).values, pilot.signal.sel(celltype=c, assay=a).values
        )
    return ds


def test_pilot_bed_ingest_reproduces_all_of_roadmap_pilot(pilot, tmp_path):
    pairs = [(c, a) for c in pilot.celltype.values for a in pilot.assay.values]
    ds = check_pilot(pilot, tmp_path, pairs)
    xr.testing.assert_equal(ds, pilot)


def test_manifest_dataframe_progress_and_report_open(tmp_path, small_files, capsys):
    folder, rows = small_files
    df = pd.DataFrame(rows, columns=["celltype", "assay", "path_or_url"])
    df["path_or_url"] = df["path_or_url"].map(str)
    report = ingest(df, tmp_path / "c.zarr", genome=SMALL, position_chunk=4096, progress=True)
    assert "100%" in capsys.readouterr().out
    assert report.open().sizes["celltype"] == 2
