"""bigWig export: headers, values, streaming, round trip through ingest, the CLI."""

from __future__ import annotations

import argparse

import dask
import numpy as np
import pandas as pd
import pyBigWig
import pytest
import xarray as xr

import avocado_xr as ax
from avocado_xr.bigwig.export import to_bigwig
from avocado_xr.bigwig.ingest import ingest
from avocado_xr.cli import main
from avocado_xr.cli.bigwig import register
from avocado_xr.exceptions import ExportError

try:
    from conftest import raise_if_dask_computes
except ImportError:  # pragma: no cover - conftest not importable as a module

    class _Counter:
        def __init__(self, limit):
            self.total_computes, self.limit = 0, limit

        def __call__(self, dsk, keys, **kwargs):
            self.total_computes += 1
            if self.total_computes > self.limit:
                raise RuntimeError(f"Too many Dask computations: {self.total_computes}")
            return dask.get(dsk, keys, **kwargs)

    import contextlib

    @contextlib.contextmanager
    def raise_if_dask_computes(max_computes=0):
        counter = _Counter(max_computes)
        with dask.config.set(scheduler=counter):
            yield counter


GENOME = {"chr1": 5_010, "chr2": 5_020}  # last bins of 10 and 20 bp


@pytest.fixture
def sim():
    ds = ax.testing.simulate_compendium(n_celltypes=3, n_assays=2, n_positions=401, seed=3)
    ds.attrs["genome"] = "custom"
    return ds


def per_bin(path, chrom, starts):
    bw = pyBigWig.open(str(path))
    out = np.array([bw.values(chrom, int(s), int(s) + 1)[0] for s in starts], dtype=np.float32)
    bw.close()
    return out


def test_header_and_values(sim, tmp_path):
    files = to_bigwig(sim, tmp_path / "out", genome=GENOME)
    observed = ax.observed_pairs(sim)
    assert [f.name for f in files] == [f"{c}.{a}.bigWig" for c, a in observed]
    for (c, a), path in zip(observed, files, strict=True):
        bw = pyBigWig.open(str(path))
        assert bw.isBigWig() and bw.chroms() == GENOME
        intervals = bw.intervals("chr1")
        assert all(e - s == 25 for s, e, _ in intervals)
        bw.close()
        track = sim.signal.sel(celltype=c, assay=a)
        for chrom in ("chr1", "chr2"):
            part = track.where(track.chrom == chrom, drop=True)
            np.testing.assert_array_equal(per_bin(path, chrom, part.start.values), part.values)


def test_round_trip_through_ingest(sim, tmp_path):
    files = to_bigwig(sim, tmp_path / "out", genome=GENOME)
    m = pd.DataFrame(
        [(f.name.split(".")[0], f.name.split(".")[1], str(f)) for f in files],
        columns=["celltype", "assay", "path_or_url"],
    )
    back = ingest(
        m, tmp_path / "back.zarr", genome=GENOME, chroms=["chr1", "chr2"], transform=None
    ).open()
    # simulate_compendium gives 201 bins per chromosome: compare on those positions
    back = back.sel(celltype=sim.celltype, assay=sim.assay)
    for c, a in ax.observed_pairs(sim):
        track = sim.signal.sel(celltype=c, assay=a)
        for chrom in ("chr1", "chr2"):
            want = track.where(track.chrom == chrom, drop=True)
            got = back.signal.sel(celltype=c, assay=a)
            got = got.where(got.chrom == chrom, drop=True).values[: want.sizes["position"]]
            np.testing.assert_array_equal(got, want.values)


def test_inverse_transform_nan_and_last_bin(tmp_path):
    values = np.arcsinh(np.array([1.0, np.nan, 3.0, 7.0], dtype=np.float32))
    da_ = xr.DataArray(
        values,
        dims="position",
        coords={"chrom": ("position", ["chr1"] * 4), "start": ("position", [0, 25, 50, 5_000])},
        attrs={"genome": "custom", "transform": "arcsinh"},
    )
    path = to_bigwig(da_, tmp_path / "one.bw", genome=GENOME, inverse_transform=True)[0]
    bw = pyBigWig.open(str(path))
    intervals = bw.intervals("chr1")
    assert [iv[:2] for iv in intervals] == [(0, 25), (50, 75), (5_000, 5_010)]
    np.testing.assert_allclose([iv[2] for iv in intervals], [1, 3, 7], rtol=1e-6)
    bw.close()
    with pytest.raises(ExportError, match="transform attribute is 'none'"):
        to_bigwig(da_.assign_attrs(transform="none"), tmp_path / "x.bw", inverse_transform=True)


def test_streams_block_by_block_without_materialising(sim, tmp_path):
    lazy = sim.copy()
    lazy["signal"] = sim.signal.chunk({"position": 100})  # as open_compendium gives it
    with raise_if_dask_computes(max_computes=5) as counter:  # 401 positions = 5 blocks
        to_bigwig(lazy, tmp_path / "out", genome=GENOME, max_open_files=100)
    assert counter.total_computes == 5


def test_pilot_regions_export_reingest(sample, tmp_path):
    """Real data, several regions per file; re-ingest with the same regions gives it back."""
    sub = sample.isel(celltype=[0, 1], assay=[0, 2])
    files = to_bigwig(sub, tmp_path / "out", max_open_files=3)  # two passes over the data
    m = pd.DataFrame(
        [(f.name.split(".")[0], f.name.split(".")[1], str(f)) for f in files],
        columns=["celltype", "assay", "path_or_url"],
    )
    names = sample.attrs["regions"].split(",")
    regions = ax.datasets.pilot_regions().set_index("name").loc[names].reset_index()
    back = ingest(
        m, tmp_path / "b.zarr", genome="hg19", regions=regions, transform=None,
        attrs={"transform": "arcsinh"},
    ).open()  # fmt: skip
    xr.testing.assert_identical(
        back.load().drop_attrs(), sub.sel(celltype=back.celltype, assay=back.assay).drop_attrs()
    )


def test_export_errors(sim, tmp_path):
    to_bigwig(sim, tmp_path / "out", genome=GENOME)
    with pytest.raises(ExportError, match="already exist"):
        to_bigwig(sim, tmp_path / "out", genome=GENOME)
    to_bigwig(sim, tmp_path / "out", genome=GENOME, overwrite=True)
    with pytest.raises(ExportError, match=r"\['chr2'\] are not in genome"):
        to_bigwig(sim, tmp_path / "o2", genome={"chr1": 10_000})
    with pytest.raises(ExportError, match="no genome"):
        to_bigwig(sim.assign_attrs(genome="unknown"), tmp_path / "o3")
    shuffled = sim.isel(position=np.r_[300:401, 0:300])
    with pytest.raises(ExportError, match="sortby"):
        to_bigwig(shuffled, tmp_path / "o4", genome=GENOME)
    with pytest.raises(ExportError, match="beyond"):
        to_bigwig(sim, tmp_path / "o5", genome={"chr1": 100, "chr2": 100})
    assert not list((tmp_path / "out").glob("*.partial"))


def test_cli_ingest_and_export(sim, tmp_path, capsys):
    parser = argparse.ArgumentParser(prog="avocado-xr")
    register(parser.add_subparsers(dest="command"))
    files = to_bigwig(sim, tmp_path / "bw", genome=GENOME)
    (tmp_path / "m.tsv").write_text(
        "celltype\tassay\tpath_or_url\n"
        + "".join(f"{f.name.split('.')[0]}\t{f.name.split('.')[1]}\t{f}\n" for f in files)
    )
    (tmp_path / "g.sizes").write_text("chr1\t5010\nchr2\t5020\n")
    (tmp_path / "r.yaml").write_text(
        "manifest: m.tsv\nstore: c.zarr\ngenome: g.sizes\ntransform: none\nposition_chunk: 64\n"
    )
    args = parser.parse_args(["ingest", "--recipe", str(tmp_path / "r.yaml")])
    assert args.func(args) == 0
    assert f"{len(files)} written" in capsys.readouterr().out
    store = ax.open_compendium(tmp_path / "c.zarr")
    assert store.attrs["genome"] == "g" and store.signal.encoding["chunks"] == (1, 1, 64)
    args = parser.parse_args(
        ["export-bigwig", str(tmp_path / "c.zarr"), str(tmp_path / "again"), "--assays", "A0"]
    )
    assert args.func(args) == 0
    assert sorted(p.name for p in (tmp_path / "again").iterdir()) == sorted(
        f.name for f in files if ".A0." in f.name
    )
    assert main(["ingest", str(tmp_path / "m.tsv"), str(tmp_path / "x.zarr")]) == 2
    assert "--genome" in capsys.readouterr().err
    bad = ["ingest", str(tmp_path / "none.tsv"), str(tmp_path / "x.zarr"), "--genome", "hg19"]
    assert main(bad) == 2 and "none.tsv" in capsys.readouterr().err
    for command in ("ingest", "export-bigwig"):
        with pytest.raises(SystemExit):
            parser.parse_args([command, "--help"])
        assert "examples:" in capsys.readouterr().out
