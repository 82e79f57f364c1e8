"""The denoising-autoencoder baseline: contract, laziness, windows, segments, persistence."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import xarray as xr
from _helpers import raise_if_dask_computes

import avocado_xr as ax
from avocado_xr.bins import segment_ids
from avocado_xr.evaluation import autoencoder
from avocado_xr.evaluation._windows import (
    average_windows,
    block_windows,
    read_windows,
    sample_windows,
)
from avocado_xr.evaluation.autoencoder import (
    AutoencoderModel,
    fit_autoencoder,
    impute_autoencoder,
    load_autoencoder,
)
from avocado_xr.exceptions import (
    AutoencoderError,
    AvocadoXrError,
    ModelFileError,
    UnknownAssayError,
)

SMALL = dict(window=5, n_hidden=8, n_windows=200, batch_size=50, device="cpu")


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny matmuls run fastest on one thread (and do not spin against other processes)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiny_compendium(seed: int = 0) -> xr.Dataset:
    """3 cell types x 3 assays; chr1 (30 bins), a 3-bin chr1 region after a gap, chr2 (20)."""
    rng = np.random.default_rng(seed)
    chrom = ["chr1"] * 33 + ["chr2"] * 20
    start = np.r_[np.arange(30) * 25, 5_000 + np.arange(3) * 25, np.arange(20) * 25]
    signal = rng.gamma(1.0, 1.0, size=(3, 3, len(start))).astype(np.float32)
    observed = np.ones((3, 3), dtype=bool)
    observed[1, 2] = False
    signal[~observed] = np.nan
    return ax.make_compendium(
        signal,
        celltypes=["C0", "C1", "C2"],
        assays=["A0", "A1", "A2"],
        chrom=chrom,
        start=start,
        observed=observed,
    )


@pytest.fixture(scope="module")
def sim():
    return ax.testing.simulate_compendium(n_positions=600, seed=0)


@pytest.fixture(scope="module")
def sim_model(sim):
    return fit_autoencoder(sim, **SMALL)


def slow_reference(model: AutoencoderModel, ds) -> np.ndarray:
    """Bin by bin: mean over the windows holding it (same segment, short ones zero-padded)."""
    w = model.config.window
    signal = np.nan_to_num(ds.signal.values)
    observed = ds.observed.values
    seg = segment_ids(ds.chrom.values, ds.start.values)
    n_c, n_a, n_p = signal.shape
    out = np.zeros((n_c, n_a, n_p))
    with torch.no_grad():
        for c in range(n_c):
            for a in range(n_a):
                keep = observed[c].copy()
                keep[a] = False
                for p in range(n_p):
                    members = np.flatnonzero(seg == seg[p])
                    first, last = members[0], members[-1]
                    if len(members) < w:
                        candidates = [first]
                    else:
                        candidates = range(max(first, p - w + 1), min(p, last - w + 1) + 1)
                    preds = []
                    for s in candidates:
                        x = np.zeros((n_a, w), dtype=np.float32)
                        n = min(w, last + 1 - s)
                        x[:, :n] = signal[c, :, s : s + n] * keep[:, None]
                        y = model.net(torch.from_numpy(x.reshape(1, -1))).numpy().reshape(n_a, w)
                        preds.append(y[a, p - s])
                    out[c, a, p] = np.mean(preds)
    return out


def test_contract(sim, sim_model):
    imp = sim_model.impute(sim)
    assert imp.imputed.dims == ("celltype", "assay", "position")
    assert imp.imputed.shape == sim.signal.shape
    assert imp.imputed.dtype == np.float32
    assert hasattr(imp.imputed.data, "chunks")
    assert imp.attrs["source"] == f"avocado_xr-{ax.__version__}"
    assert imp.attrs["method"] == "autoencoder"
    assert '"window": 5' in imp.attrs["autoencoder_config"]
    np.testing.assert_array_equal(imp.start.values, sim.start.values)
    np.testing.assert_array_equal(imp.chrom.values, sim.chrom.values)
    values = imp.imputed.values
    assert np.isfinite(values).all()
    sub = sim_model.impute(sim, celltypes="C1", assays=["A2", "A0"])
    assert sub.imputed.assay.values.tolist() == ["A2", "A0"]
    np.testing.assert_allclose(
        sub.imputed.sel(assay="A0").values[0], values[1, 0], rtol=1e-5, atol=1e-6
    )


@pytest.mark.parametrize("sub_batch", [7, 4096])
def test_impute_matches_slow_reference(monkeypatch, sub_batch):
    monkeypatch.setattr(autoencoder, "_SUB_BATCH", sub_batch)
    ds = tiny_compendium()
    model = fit_autoencoder(ds, window=5, n_hidden=6, n_windows=50, batch_size=25, epochs=1)
    expected = slow_reference(model, ds)
    np.testing.assert_allclose(model.impute(ds).imputed.values, expected, rtol=1e-5, atol=1e-5)


def test_average_windows_matches_loop():
    rng = np.random.default_rng(1)
    size, w = 40, 6
    starts = np.sort(rng.choice(size - w, size=12, replace=False))
    lengths = rng.integers(1, w + 1, size=12)
    pred = rng.normal(size=(12, w))
    expected = np.full(size, np.nan)
    for p in range(size):
        vals = [pred[i, p - s] for i, s in enumerate(starts) if s <= p < s + lengths[i]]
        if vals:
            expected[p] = np.mean(vals)
    np.testing.assert_allclose(average_windows(pred, starts, lengths, size), expected, rtol=1e-6)


def test_windows_stay_in_segments():
    ds = tiny_compendium()
    seg = segment_ids(ds.chrom.values, ds.start.values)
    starts, lengths = block_windows(seg, 5)
    assert all(seg[s] == seg[s + n - 1] for s, n in zip(starts, lengths, strict=True))
    # the 3-bin segment is one padded window; every bin is covered
    assert lengths.tolist().count(3) == 1 and set(lengths.tolist()) == {3, 5}
    covered = np.zeros(len(seg), dtype=bool)
    for s, n in zip(starts, lengths, strict=True):
        covered[s : s + n] = True
    assert covered.all()
    cells, starts = sample_windows(seg, ds.observed.values, 5, 500, np.random.default_rng(0))
    assert (seg[starts] == seg[starts + 4]).all()
    assert set(np.unique(seg[starts])) == {0, 2}  # never the short segment


def test_chromosomes_do_not_mix():
    """Imputing chr1 alone equals chr1 of the whole compendium, although chr2 is huge."""
    ds = tiny_compendium()
    ds["signal"] = ds.signal.where(ds.chrom != "chr2", ds.signal * 100)
    model = fit_autoencoder(ds, **{**SMALL, "epochs": 0})
    whole = model.impute(ds).imputed
    on_chr1 = ds.chrom.values == "chr1"
    alone = model.impute(ds.isel(position=np.flatnonzero(on_chr1))).imputed
    np.testing.assert_allclose(whole.values[:, :, on_chr1], alone.values, rtol=1e-5, atol=1e-6)
    # glued onto chr1 as if contiguous, chr2 would change chr1's last bins
    glued = ds.drop_indexes(["chrom", "start"])
    glued = glued.assign_coords(chrom=("position", ["chr1"] * ds.sizes["position"]))
    glued = glued.assign_coords(start=("position", np.arange(ds.sizes["position"]) * 25))
    mixed = model.impute(glued).imputed.values[:, :, on_chr1]
    assert not np.allclose(mixed[:, :, 25:30], alone.values[:, :, 25:30])


def test_observed_track_is_masked(sim, sim_model):
    changed = sim.copy()
    changed["signal"] = sim.signal.where(
        ~((sim.celltype == "C1") & (sim.assay == "A0")), sim.signal * 3 + 1
    )
    assert bool(sim.observed.sel(celltype="C1", assay="A0"))
    before = sim_model.impute(sim, celltypes="C1").imputed.values
    after = sim_model.impute(changed, celltypes="C1").imputed.values
    np.testing.assert_allclose(after[0, 0], before[0, 0], rtol=1e-5, atol=1e-6)
    assert not np.allclose(after[0, 1], before[0, 1])


def test_lazy_and_chunk_invariant_on_zarr(tmp_path, sim, sim_model):
    path = tmp_path / "sim.zarr"
    ax.save_compendium(sim, path, position_chunk=64)
    lazy = ax.open_compendium(path)
    with raise_if_dask_computes():
        imp = sim_model.impute(lazy)
    assert imp.imputed.data.chunks[-1] == lazy.signal.data.chunks[-1]
    expected = sim_model.impute(sim, position_chunk=10_000).imputed.values
    np.testing.assert_allclose(imp.imputed.values, expected, rtol=1e-5, atol=1e-6)
    for chunk in (7, 41, 333):
        other = sim_model.impute(sim, position_chunk=chunk).imputed.values
        np.testing.assert_allclose(other, expected, rtol=1e-5, atol=1e-6)


def test_training_reads_dask_blocks_like_numpy(tmp_path, sim):
    path = tmp_path / "sim.zarr"
    ax.save_compendium(sim, path, position_chunk=50)
    lazy = ax.open_compendium(path)
    seg = segment_ids(sim.chrom.values, sim.start.values)
    cells, starts = sample_windows(seg, sim.observed.values, 9, 300, np.random.default_rng(0))
    eager = read_windows(sim.signal.values, cells, starts, 9)
    blocked = read_windows(lazy.signal.data, cells, starts, 9)
    np.testing.assert_array_equal(blocked, eager)
    assert not np.isnan(eager).any()
    a = fit_autoencoder(sim, **SMALL)
    b = fit_autoencoder(lazy, **SMALL)
    for key, value in a.net.state_dict().items():
        torch.testing.assert_close(b.net.state_dict()[key], value)


def test_deterministic_for_a_seed(sim, sim_model):
    again = fit_autoencoder(sim, **SMALL)
    for key, value in sim_model.net.state_dict().items():
        assert torch.equal(again.net.state_dict()[key], value)
    assert [h["loss"] for h in again.history] == [h["loss"] for h in sim_model.history]
    other = fit_autoencoder(sim, **{**SMALL, "seed": 1})
    assert not torch.equal(other.net[0].weight, sim_model.net[0].weight)


def test_save_load_identical(tmp_path, sim, sim_model):
    sim_model.save(tmp_path / "ae")
    loaded = load_autoencoder(tmp_path / "ae")
    assert loaded.config == sim_model.config and loaded.assays == sim_model.assays
    assert loaded.history == sim_model.history
    for key, value in sim_model.net.state_dict().items():
        assert torch.equal(loaded.net.state_dict()[key], value)
    np.testing.assert_array_equal(
        loaded.impute(sim).imputed.values, sim_model.impute(sim).imputed.values
    )
    with pytest.raises(ModelFileError, match="overwrite=True"):
        sim_model.save(tmp_path / "ae")
    sim_model.save(tmp_path / "ae", overwrite=True)
    assert not hasattr(loaded, "_train_ds")  # a model keeps only learned state
    with pytest.raises(ModelFileError, match="no autoencoder.json"):
        load_autoencoder(tmp_path)


def test_errors(sim, sim_model):
    with pytest.raises(AutoencoderError, match="smaller window"):
        fit_autoencoder(sim, window=400, n_hidden=4, n_windows=10)
    with pytest.raises(AvocadoXrError, match="mask_prob"):
        fit_autoencoder(sim, mask_prob=1.0)
    with pytest.raises(UnknownAssayError, match="A2"):
        sim_model.impute(sim.sel(assay=["A0", "A1"]))
    with pytest.raises(AvocadoXrError, match="Unknown assay"):
        sim_model.impute(sim, assays="H3K4me3")


def test_impute_autoencoder_all_tracks(sim):
    imp = impute_autoencoder(sim, seed=3, **SMALL, position_chunk=200)
    assert dict(imp.imputed.sizes) == dict(sim.signal.sizes)
    assert imp.imputed.data.chunks[-1] == (200, 200, 200)
    assert '"seed": 3' in imp.attrs["autoencoder_config"]


def test_fit_on_device(sim, device):
    model = fit_autoencoder(sim, **{**SMALL, "device": device})
    assert [h["device"] for h in model.history] == [torch.device(device).type]  # trained there
    assert next(model.net.parameters()).device.type == "cpu"  # returned for Dask workers
    assert np.isfinite(model.impute(sim, celltypes="C0").imputed.values).all()


def test_learns_on_real_sample(sample):
    train = ax.mask(sample, [("E065", "H3K4me3")])
    truth = sample.signal.sel(celltype="E065", assay="H3K4me3").values
    settings = dict(n_hidden=64, n_windows=3_000, batch_size=200, device="cpu")

    def held_out_r(epochs):
        model = fit_autoencoder(train, epochs=epochs, **settings)
        pred = model.impute(train, celltypes="E065", assays="H3K4me3").imputed.values[0, 0]
        return np.corrcoef(pred, truth)[0, 1], model

    r_untrained, _ = held_out_r(0)
    r_trained, model = held_out_r(3)
    assert model.history[-1]["rmse"] < model.history[0]["rmse"]
    assert r_trained > 0.1
    assert r_trained > r_untrained + 0.1
