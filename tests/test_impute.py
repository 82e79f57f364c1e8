"""Imputation is lazy and streams block by block; factors; save and load."""

from __future__ import annotations

import hashlib
import json
import os
import pickle

import dask
import numpy as np
import pytest
import torch
import xarray as xr
from _helpers import raise_if_dask_computes
from hypothesis import given, settings
from hypothesis import strategies as st

import avocado_xr as ax
from avocado_xr.exceptions import ConfigError, ModelFileError, RegionError
from avocado_xr.model.impute import ImputeState, TableRows

SMALL = {"n_layers": 2, "n_nodes": 16, "batch_size": 500, "device": "cpu"}


@pytest.fixture(scope="module")
def sim():
    return ax.testing.simulate_compendium(n_celltypes=3, n_assays=3, n_positions=2_400, seed=7)


@pytest.fixture(scope="module")
def model(sim):
    return ax.fit(sim, epochs=2, **SMALL)


@pytest.fixture(scope="module")
def store(sim, tmp_path_factory):
    path = tmp_path_factory.mktemp("impute") / "sim.zarr"
    ax.save_compendium(sim, path, position_chunk=500)
    return path


def _eager(model, celltype, assay, positions=None):
    return model.predict(celltype, assay, positions)


def test_impute_builds_lazily_and_matches_the_network(model, store, sim):
    lazy = ax.open_compendium(store)
    with raise_if_dask_computes():
        imp = lazy.avocado.impute(model)
        sub = imp.sel(celltype="C1", assay="A2")
    assert hasattr(imp.imputed.data, "chunks")
    assert imp.imputed.data.chunks[2] == (500, 500, 500, 500, 400)
    np.testing.assert_allclose(sub.imputed.values, _eager(model, "C1", "A2"), rtol=1e-5, atol=1e-6)
    # merge=True keeps the observed signal beside the imputation, with the same coordinates
    assert set(imp.data_vars) == {"signal", "observed", "imputed"}
    xr.testing.assert_equal(imp.start, sim.start)
    assert imp.attrs["source"].startswith("avocado_xr-")
    assert imp.imputed.attrs["avocado_config_digest"] == model.config.digest()


def test_writing_streams_block_by_block(model, store, tmp_path, monkeypatch):
    calls = []
    original = ImputeState.predict_block

    def spy(self, position, *args):
        calls.append(len(position))
        return original(self, position, *args)

    monkeypatch.setattr(ImputeState, "predict_block", spy)
    imp = model.impute(ax.open_compendium(store), merge=False)
    assert calls == []  # building computed nothing
    with dask.config.set(scheduler="synchronous"):
        imp.to_zarr(tmp_path / "imputed.zarr", zarr_format=3, consolidated=False)
    assert sorted(calls) == [400, 500, 500, 500, 500]  # one network call per block
    written = xr.open_zarr(tmp_path / "imputed.zarr", consolidated=False)
    assert written.imputed.encoding["chunks"][2] == 500
    np.testing.assert_allclose(
        written.imputed.sel(celltype="C0", assay="A0").values,
        _eager(model, "C0", "A0"),
        rtol=1e-5,
        atol=1e-6,
    )


@settings(max_examples=8, deadline=None)
@given(st.integers(7, 2_400))
def test_result_does_not_depend_on_chunking(model, chunk):
    reference = model.impute(None, position_chunk=2_400).imputed.values
    result = model.impute(None, position_chunk=chunk).imputed.values
    np.testing.assert_allclose(result, reference, rtol=1e-5, atol=1e-6)  # BLAS rounding only


def test_subsets_and_regions(model, sim):
    full = model.impute(sim, merge=False)
    region = sim.avocado.region("chr2:2,000-5,000")
    part = model.impute(region, celltypes="C2", assays=["A0", "A1"])
    assert part.imputed.dims == ("celltype", "assay", "position")
    assert list(part.celltype.values) == ["C2"] and part.sizes["assay"] == 2
    expected = ax.region(full, "chr2:2,000-5,000").imputed.sel(celltype=["C2"], assay=["A0", "A1"])
    # the same up to BLAS rounding (tracks are stacked through the network together)
    np.testing.assert_allclose(part.imputed.values, expected.values, rtol=1e-6, atol=1e-7)
    plain = sim.drop_indexes(["chrom", "start"])
    moved = plain.assign_coords(start=("position", sim.start.values + 10_000_000))
    with pytest.raises(RegionError, match="not among the model's positions"):
        model.impute(moved)
    with pytest.raises(ax.AvocadoXrError, match="Unknown assay"):
        model.impute(sim, assays=["H3K4me3"])


def test_factors_are_labelled(model):
    fac = model.factors()
    assert fac.celltype_factors.dims == ("celltype", "celltype_factor")
    assert fac.celltype_factors.shape == (3, 32)
    assert fac.assay_factors.shape == (3, 256)
    assert fac.genome_factors_25bp.shape == (2_400, 25)
    # coarse bins carry their own coordinates and never straddle the chr1/chr2 boundary
    assert fac.genome_factors_250bp.dims == ("position_250bp", "factor_250bp")
    assert fac.sizes["position_250bp"] == 240 and fac.sizes["position_5kbp"] == 12
    assert set(fac.chrom_5kbp.values) == {"chr1", "chr2"}
    features = fac.genome_features
    assert hasattr(features.data, "chunks") and features.shape == (2_400, 110)
    with torch.no_grad():
        expected = model.net.genome_features(torch.arange(2_400)).numpy()
    np.testing.assert_array_equal(features.values, expected)
    assert fac.attrs["source"].startswith("avocado_xr-")


def test_save_and_load_predict_identically(model, sim, tmp_path):
    model.save(tmp_path / "m")
    loaded = ax.load_model(tmp_path / "m")
    assert loaded.config == model.config and loaded.layout == model.layout
    assert loaded.history == model.history
    saved, restored = model.net.state_dict(), loaded.net.state_dict()
    assert saved.keys() == restored.keys()
    for name, tensor in saved.items():
        assert torch.equal(tensor.cpu(), restored[name].cpu()), name  # bit-identical weights
    # the same function; float32 sums may reorder across BLAS thread splits on a loaded machine
    np.testing.assert_allclose(
        loaded.impute(sim, merge=False).imputed.values,
        model.impute(sim, merge=False).imputed.values,
        rtol=1e-6,
        atol=1e-7,
    )
    with pytest.raises(ModelFileError, match="already holds a model"):
        model.save(tmp_path / "m")


class _Exploit:
    def __reduce__(self):
        return (os.system, ("touch EXPLOITED",))


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_loading_never_executes_code(model, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    model.save(tmp_path / "m")
    weights = tmp_path / "m" / "weights.pt"
    with open(weights, "wb") as fh:
        pickle.dump({"payload": _Exploit()}, fh)
    with pytest.raises(ModelFileError, match="weights.pt does not match the SHA-256"):
        ax.load_model(tmp_path / "m")
    # even with the digest updated to match, weights_only refuses to run the payload
    meta = json.loads((tmp_path / "m" / "model.json").read_text())
    meta["sha256"]["weights.pt"] = hashlib.sha256(weights.read_bytes()).hexdigest()
    (tmp_path / "m" / "model.json").write_text(json.dumps(meta))
    with pytest.raises(ModelFileError, match="weights"):
        ax.load_model(tmp_path / "m")
    assert not (tmp_path / "EXPLOITED").exists()
    with pytest.raises(ModelFileError, match="No model directory"):
        ax.load_model(tmp_path / "nothing")
    (tmp_path / "m" / "model.json").write_text("{not json")
    with pytest.raises(ModelFileError, match="not valid JSON"):
        ax.load_model(tmp_path / "m")


def test_load_model_on_a_device(model, tmp_path):
    model.save(tmp_path / "m")
    loaded = ax.load_model(tmp_path / "m", device="cpu")
    assert next(loaded.net.parameters()).device.type == "cpu"
    with pytest.raises(ConfigError, match="banana"):
        ax.load_model(tmp_path / "m", device="banana")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="no CUDA device"):
            ax.load_model(tmp_path / "m", device="cuda")


def test_merge_warns_before_replacing_an_imputation(model, sim):
    imp = model.impute(sim)
    with pytest.warns(ax.AvocadoXrWarning, match="Overwriting the existing 'imputed'"):
        again = model.impute(imp)
    xr.testing.assert_allclose(again.imputed, imp.imputed)


def test_input_chunked_along_celltype_and_assay(model, sim):
    """Dask chunks over celltype/assay (not only position) give the same imputation."""
    expected = model.impute(sim, merge=False).imputed.values
    chunked = sim.copy()
    chunked["signal"] = sim.signal.copy(data=dask.array.from_array(sim.signal.values, (1, 2, 700)))
    with raise_if_dask_computes():
        imp = model.impute(chunked, merge=False)
    assert imp.imputed.data.chunks[2] == (700, 700, 700, 300)
    np.testing.assert_allclose(imp.imputed.values, expected, rtol=1e-5, atol=1e-6)


def test_predict_restores_the_module_mode(model):
    model.net.train()
    before = model.predict("C0", "A0")
    assert model.net.training  # a user's module is left as it was found
    model.net.eval()
    np.testing.assert_array_equal(model.predict("C0", "A0"), before)  # eval-mode predictions


def test_imputes_in_the_precision_it_was_trained_in():
    """A bf16-trained model imputes in bf16 unless told otherwise (its saved record says so);
    the float32 imputation differs, so the default is not float32."""
    ds = ax.testing.simulate_compendium(n_positions=1_000, seed=0)
    model = ax.fit(
        ds, epochs=1, n_layers=1, n_nodes=64, batch_size=500, device="cpu", precision="bfloat16"
    )
    assert model.training_info["precision"] == "bfloat16"
    default = model.impute(ds, merge=False).imputed.values
    bf16 = model.impute(ds, merge=False, precision="bfloat16").imputed.values
    fp32 = model.impute(ds, merge=False, precision="float32").imputed.values
    np.testing.assert_array_equal(default, bf16)
    assert not np.array_equal(default, fp32)


def test_imputes_on_the_device(model, sim, device):
    """The same imputation on any device (the default is the CPU on a machine without CUDA);
    the shipped head stays on the CPU, and a used state pickles without its device copy."""
    cpu = model.impute(sim, merge=False, device="cpu").imputed.values
    on_device = model.impute(sim, merge=False, device=device).imputed.values
    np.testing.assert_allclose(on_device, cpu, rtol=1e-5, atol=1e-5)
    if not torch.cuda.is_available():
        np.testing.assert_array_equal(model.impute(sim, merge=False).imputed.values, cpu)
    state = ImputeState.from_head(model.head, device=device)
    state.predict_block(TableRows.of(model.net, 0, 10).features(np.arange(10)), [0], [0])
    assert all(p.device.type == "cpu" for p in state.head.parameters())
    assert "_placed" not in pickle.loads(pickle.dumps(state)).__dict__


@pytest.mark.parametrize("device", ["tpu:x", "cuda"])
def test_a_bad_device_fails_before_any_work(model, sim, device):
    if device == "cuda" and torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with raise_if_dask_computes(), pytest.raises(ConfigError, match="device"):
        model.impute(sim, device=device)
