"""The compendium contract: validation, masking, region selection and zarr storage."""

from __future__ import annotations

import os

import numpy as np
import pytest
import xarray as xr
from _helpers import raise_if_dask_computes

import avocado_xr as ax
from avocado_xr.exceptions import (
    AvocadoXrError,
    DimensionError,
    InvalidSignalError,
    RegionError,
    StoreError,
    UnknownAssayError,
    UnknownCelltypeError,
)


@pytest.fixture
def sim():
    return ax.testing.simulate_compendium(n_celltypes=4, n_assays=3, n_positions=3_000, seed=3)


def test_simulation_is_seeded_and_has_holes(sim):
    again = ax.testing.simulate_compendium(n_celltypes=4, n_assays=3, n_positions=3_000, seed=3)
    xr.testing.assert_identical(sim, again)
    other = ax.testing.simulate_compendium(n_celltypes=4, n_assays=3, n_positions=3_000, seed=4)
    assert not np.array_equal(np.nan_to_num(sim.signal.values), np.nan_to_num(other.signal.values))
    observed = sim.observed.values
    assert 0 < observed.sum() < observed.size
    assert observed.any(axis=0).all() and observed.any(axis=1).all()
    ax.validate(sim, check_values=True)


def test_validate_names_the_problem(sim):
    with pytest.raises(DimensionError, match="no variable 'chrom'"):
        ax.validate(sim.drop_vars(["chrom", "start"]))
    with pytest.raises(DimensionError, match="must have dims"):
        ax.validate(sim.assign(signal=sim.signal.transpose("assay", "celltype", "position")))
    broken = sim.copy(deep=True)
    c, a = (int(i) for i in np.argwhere(sim.observed.values)[0])
    broken.signal.values[c, a, 17] = np.nan
    with pytest.raises(InvalidSignalError, match=f"'C{c}', 'A{a}'.*NaN"):
        ax.validate(broken, check_values=True)
    hidden = np.argwhere(~sim.observed.values)[0]
    broken = sim.copy(deep=True)
    broken.signal.values[hidden[0], hidden[1], :] = 1.0
    with pytest.raises(InvalidSignalError, match="unobserved but has signal"):
        ax.validate(broken, check_values=True)
    dup = sim.assign_coords(celltype=["C0", "C0", "C2", "C3"])
    with pytest.raises(DimensionError, match="Duplicate celltype"):
        ax.validate(dup)
    try:  # one package error for all, and still the built-in a caller would expect
        ax.validate(sim.drop_vars("observed"))
    except ValueError as err:
        assert isinstance(err, AvocadoXrError) and "'observed'" in str(err)
    else:
        raise AssertionError("validate() accepted a compendium without 'observed'")


def test_mask_hides_tracks_lazily(sim, tmp_path):
    c, a = (str(v) for v in ax.observed_pairs(sim)[0])
    masked = sim.avocado.mask([(c, a)])
    assert not bool(masked.observed.sel(celltype=c, assay=a))
    assert masked.signal.sel(celltype=c, assay=a).isnull().all()
    assert sim.observed.sel(celltype=c, assay=a)  # the input is untouched
    others = [p for p in ax.observed_pairs(sim) if p != (c, a)]
    assert ax.observed_pairs(masked) == others
    ax.validate(masked, check_values=True)
    with pytest.raises(UnknownCelltypeError, match="Unknown celltype \\['E999'\\]"):
        sim.avocado.mask([("E999", a)])
    with pytest.raises(UnknownAssayError, match="Unknown assay"):
        sim.avocado.mask([(c, "H3K999")])
    store = tmp_path / "sim.zarr"
    ax.save_compendium(sim, store)
    lazy = ax.open_compendium(store)
    with raise_if_dask_computes():
        lazy_masked = lazy.avocado.mask([(c, a)])
    assert hasattr(lazy_masked.signal.data, "chunks")


def test_region_by_string_and_coordinates(sim):
    by_string = sim.avocado.region("chr2:1,000-1,500")
    by_args = sim.avocado.region("chr2", 1000, 1500)
    xr.testing.assert_identical(by_string, by_args)
    assert by_string.start.values.tolist() == list(range(1000, 1500, 25))
    assert set(by_string.chrom.values) == {"chr2"}
    # a bin overlapping the interval edge is included
    assert sim.avocado.region("chr1:10-30").start.values.tolist() == [0, 25]
    with pytest.raises(RegionError, match="Chromosome 'chrX' is not in the data"):
        sim.avocado.region("chrX:1-100")
    with pytest.raises(RegionError, match="Cannot parse"):
        sim.avocado.region("chr1-100")
    with pytest.raises(RegionError, match="empty"):
        sim.avocado.region("chr1", 500, 100)
    with pytest.raises(RegionError, match="No position"):
        sim.avocado.region("chr1:10,000,000-10,000,100")


def test_zarr_round_trip_skips_unobserved_chunks(sim, tmp_path):
    store = tmp_path / "sim.zarr"
    sim.avocado.to_zarr(store, position_chunk=1_000)
    lazy = ax.open_compendium(store)
    assert lazy.signal.data.chunks[2] == (1_000, 1_000, 1_000)
    xr.testing.assert_equal(lazy.load(), sim)
    assert lazy.attrs["genome"] == "simulated"
    # chunk files of unobserved tracks are never written
    written = set()
    for root, _, files in os.walk(store / "signal" / "c"):
        parts = os.path.relpath(root, store / "signal" / "c").split(os.sep)
        if len(parts) == 2 and files:
            written.add((int(parts[0]), int(parts[1])))
    expected = {tuple(int(i) for i in p) for p in np.argwhere(sim.observed.values)}
    assert written == expected
    with pytest.raises(StoreError, match="already exists"):
        ax.save_compendium(sim, store)  # mode "w-" refuses to overwrite


def test_open_compendium_is_lazy_and_validates(sim, tmp_path):
    store = tmp_path / "sim.zarr"
    ax.save_compendium(sim, store)
    with raise_if_dask_computes():
        lazy = ax.open_compendium(store)
        ax.validate(lazy)
    assert hasattr(lazy.signal.data, "chunks")
    with pytest.raises(StoreError, match="No zarr store"):
        ax.open_compendium(tmp_path / "missing.zarr")


def test_make_compendium_infers_observed():
    signal = np.zeros((2, 2, 5), dtype=np.float32)
    signal[1, 0] = np.nan
    ds = ax.make_compendium(
        signal, celltypes=["a", "b"], assays=["x", "y"], chrom=["c1"] * 5, start=np.arange(5) * 25
    )
    assert ds.observed.values.tolist() == [[True, True], [False, True]]
