"""Real data: the Roadmap pilot tracks, their coordinates, lookup order and pinned hashes."""

from __future__ import annotations

import functools
import http.server
import shutil
import threading

import numpy as np
import pytest
from _helpers import REPO

import avocado_xr as ax
from avocado_xr import datasets
from avocado_xr.exceptions import DataNotFoundError


def test_pilot_layout_matches_the_bed_columns(shared_data):
    regions = datasets.pilot_regions()
    bed = [
        line.split("\t")
        for line in (shared_data / "encode_pilot_regions.hg19.bed").read_text().splitlines()
    ]
    assert len(regions) == len(bed) == 42
    # columns 5-7 of the shared BED were derived independently of our n_bins/first-bin rule
    assert regions.offset.tolist() == [int(r[4]) for r in bed]
    assert regions.n_bins.tolist() == [int(r[5]) for r in bed]
    assert regions.first_bin_start.tolist() == [int(r[6]) for r in bed]
    last = regions.first_bin_start + 25 * regions.n_bins
    assert last.tolist() == [int(r[7]) for r in bed]


def test_roadmap_pilot_is_labelled_real_data(pilot, shared_data):
    assert dict(pilot.sizes) == {"celltype": 5, "assay": 5, "position": 1_126_469}
    assert pilot.attrs["genome"] == "hg19" and pilot.attrs["resolution"] == 25
    raw = np.load(shared_data / "roadmap_pilot" / "E117.H3K9me3.pilot.arcsinh.npz")["arr_0"]
    np.testing.assert_array_equal(pilot.signal.sel(celltype="E117", assay="H3K9me3").values, raw)
    # chromosomes in natural order, each bin 25 bp after the previous within a region
    chroms = list(dict.fromkeys(pilot.chrom.values.tolist()))
    assert chroms == [
        f"chr{i}" for i in (1, 2, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 18, 19, 20, 21, 22)
    ]
    # the ENr231 region starts at data index 0 with the bin before 151158060 // 25 * 25
    assert (pilot.chrom.values[0], int(pilot.start.values[0])) == ("chr1", 151158025)


def test_h3k4me3_is_high_at_refseq_tss(pilot, shared_data):
    """An independent check of the coordinates: promoters carry H3K4me3."""
    tss = [
        line.split("\t")
        for line in (shared_data / "pilot_refseq_tss.hg19.bed").read_text().splitlines()
        if not line.startswith("#")
    ]
    p = int(tss[0][1])
    region = ax.region(pilot, tss[0][0], p - 500, p + 500)
    assert region.sizes["position"] == (p + 499) // 25 - (p - 500) // 25 + 1
    mean = float(pilot.signal.sel(assay="H3K4me3").mean())
    at_tss = []
    for row in tss[:200]:
        sub = ax.region(pilot, row[0], int(row[1]), int(row[1]) + 1)
        at_tss.append(float(sub.signal.sel(assay="H3K4me3").mean()))
    assert np.mean(at_tss) > 3 * mean


def test_sample_is_a_slice_of_the_pilot(pilot, sample):
    sub = pilot.isel(
        position=np.flatnonzero(
            np.isin(pilot.start.values, sample.start.values)
            & np.isin(pilot.chrom.values, ["chr1", "chr11", "chr20"])
        )
    )
    np.testing.assert_array_equal(sub.start.values, sample.start.values)
    np.testing.assert_array_equal(sub.signal.values, sample.signal.values)


def test_registry_package_copy_equals_io_registry():
    packaged = (REPO / "avocado_xr" / "data" / "roadmap_pilot_registry.txt").read_text()
    assert (REPO / "io" / "registry" / "roadmap_pilot.txt").read_text() == packaged
    assert len(datasets.registry()) == 25


def test_environment_variable_is_used(monkeypatch, shared_data):
    monkeypatch.setenv(datasets.ENV_VAR, str(shared_data / "roadmap_pilot"))
    ds = datasets.roadmap_pilot(download=False)
    assert ds.sizes["position"] == 1_126_469


def test_missing_and_corrupt_files_are_reported(tmp_path, shared_data):
    with pytest.raises(DataNotFoundError, match="not a directory"):
        datasets.roadmap_pilot(tmp_path / "nowhere")
    for f in (shared_data / "roadmap_pilot").glob("*.npz"):
        shutil.copy(f, tmp_path / f.name)
    (tmp_path / "E003.H3K4me3.pilot.arcsinh.npz").unlink()
    with pytest.raises(DataNotFoundError, match="E003.H3K4me3.pilot.arcsinh.npz is missing"):
        datasets.roadmap_pilot(tmp_path)
    shutil.copy(
        shared_data / "roadmap_pilot" / "E017.H3K4me3.pilot.arcsinh.npz",
        tmp_path / "E003.H3K4me3.pilot.arcsinh.npz",
    )
    with pytest.raises(DataNotFoundError, match="does not match its pinned SHA256"):
        datasets.roadmap_pilot(tmp_path)


def test_no_source_at_all_is_an_error(monkeypatch):
    monkeypatch.delenv(datasets.ENV_VAR, raising=False)
    with pytest.raises(DataNotFoundError, match="set \\$AVOCADO_XR_ROADMAP_PILOT"):
        datasets.roadmap_pilot(download=False)


@pytest.fixture
def local_server(shared_data):
    """Serve the local copies of the upstream files over HTTP on the loopback interface."""
    handler = functools.partial(
        http.server.SimpleHTTPRequestHandler, directory=str(shared_data / "roadmap_pilot")
    )
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


def test_pooch_download_verifies_pinned_hashes(monkeypatch, tmp_path, local_server, pilot):
    monkeypatch.delenv(datasets.ENV_VAR, raising=False)
    monkeypatch.setattr(datasets, "_BASE_URL", local_server)
    ds = datasets.roadmap_pilot(cache=str(tmp_path / "cache"))
    np.testing.assert_array_equal(ds.signal.values, pilot.signal.values)
    assert len(list((tmp_path / "cache").glob("*.npz"))) == 25
    # a tampered pin makes pooch refuse the download
    pins = datasets.registry()
    pins["E003.H3K27me3.pilot.arcsinh.npz"] = "0" * 64
    monkeypatch.setattr(datasets, "registry", lambda: pins)
    with pytest.raises(DataNotFoundError, match="E003.H3K27me3.pilot.arcsinh.npz.*pinned SHA256"):
        datasets.roadmap_pilot(cache=str(tmp_path / "cache2"))
