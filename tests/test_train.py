"""Training: learning, determinism, checkpoints and resumption, validation, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import avocado_xr as ax
from avocado_xr import train as train_module
from avocado_xr.baselines import average_baseline, mean_baseline
from avocado_xr.config import DEMO_NETWORK
from avocado_xr.exceptions import AvocadoXrError, InvalidSignalError

SMALL = {"n_layers": 1, "n_nodes": 32, "batch_size": 500, "device": "cpu"}


@pytest.fixture(scope="module")
def sim():
    return ax.testing.simulate_compendium(n_celltypes=5, n_assays=4, n_positions=4_000, seed=2)


def _pair(ds):
    return ax.observed_pairs(ds)[0]


def _state(model):
    return {k: v.clone() for k, v in model.net.state_dict().items()}


def test_learns_simulated_structure(sim):
    pair = _pair(sim)
    model = ax.fit(sim, epochs=15, validation=[pair], **SMALL)
    val = [h["val_mse"] for h in model.history]
    loss = [h["loss"] for h in model.history]
    assert val[-1] < 0.8 * val[0] and loss[-1] < 0.7 * loss[0]
    truth = sim.signal.sel(celltype=pair[0], assay=pair[1]).values
    pred = model.predict(*pair)
    assert abs(float(((pred - truth) ** 2).mean()) - val[-1]) < 1e-5  # history is held-out MSE
    assert model.training["validation_tracks"] == [f"{pair[0]}/{pair[1]}"]
    assert f"{pair[0]}/{pair[1]}" not in model.training["train_tracks"]


def test_same_seed_same_model_on_cpu(sim):
    a = ax.fit(sim, epochs=2, seed=5, **SMALL)
    b = sim.avocado.fit(epochs=2, seed=5, **SMALL)
    c = ax.fit(sim, epochs=2, seed=6, **SMALL)
    for k, v in _state(a).items():
        torch.testing.assert_close(v, _state(b)[k], rtol=0, atol=0)
    assert not torch.equal(_state(a)["head.output.weight"], _state(c)["head.output.weight"])
    assert [h["loss"] for h in a.history] == [h["loss"] for h in b.history]


def test_zarr_backed_training_equals_in_memory(sim, tmp_path):
    ax.save_compendium(sim, tmp_path / "sim.zarr", position_chunk=1_000)
    lazy = ax.open_compendium(tmp_path / "sim.zarr")
    from_zarr = ax.fit(lazy, epochs=2, **SMALL)
    in_memory = ax.fit(sim, epochs=2, block_size=1_000, **SMALL)
    for k, v in _state(from_zarr).items():
        torch.testing.assert_close(v, _state(in_memory)[k], rtol=0, atol=0)


def test_resume_continues_from_the_last_checkpoint(sim, tmp_path, monkeypatch):
    pair = _pair(sim)
    uninterrupted = ax.fit(sim, epochs=4, validation=[pair], **SMALL)
    ax.fit(sim, epochs=2, validation=[pair], checkpoint=tmp_path / "ckpt", **SMALL)
    assert (tmp_path / "ckpt" / "checkpoint.pt").exists()
    calls = []
    original = train_module._train_epoch
    monkeypatch.setattr(
        train_module,
        "_train_epoch",
        lambda *args: calls.append(args[7]) or original(*args),
    )
    resumed = ax.fit(sim, epochs=4, validation=[pair], checkpoint=tmp_path / "ckpt", **SMALL)
    assert calls == [2, 3]  # only the epochs after the checkpoint ran
    assert [h["epoch"] for h in resumed.history] == [1, 2, 3, 4]
    for a, b in zip(resumed.history, uninterrupted.history, strict=True):
        assert a["loss"] == b["loss"] and a["val_mse"] == b["val_mse"]
    for k, v in _state(resumed).items():
        torch.testing.assert_close(v, _state(uninterrupted)[k], rtol=0, atol=0)
    calls.clear()
    done = ax.fit(sim, epochs=4, validation=[pair], checkpoint=tmp_path / "ckpt", **SMALL)
    assert calls == [] and len(done.history) == 4


def test_checkpoint_of_another_run_is_refused(sim, tmp_path):
    ax.fit(sim, epochs=1, checkpoint=tmp_path, **SMALL)
    with pytest.raises(AvocadoXrError, match="different run.*seed"):
        ax.fit(sim, epochs=2, checkpoint=tmp_path, seed=1, **SMALL)


def test_input_errors(sim):
    with pytest.raises(TypeError, match="n_nodez"):
        ax.fit(sim, epochs=1, n_nodez=3)
    hidden = tuple(str(v) for v in np.argwhere(~sim.observed.values)[0])
    hidden = (sim.celltype.values[int(hidden[0])], sim.assay.values[int(hidden[1])])
    with pytest.raises(InvalidSignalError, match="not observed"):
        ax.fit(sim, epochs=1, validation=[hidden], **SMALL)
    with pytest.raises(ax.AvocadoXrError, match="Unknown celltype"):
        ax.fit(sim, epochs=1, validation=[("nope", "A0")], **SMALL)
    with pytest.raises(ValueError, match="precision"):
        ax.fit(sim, epochs=1, precision="float8", **SMALL)


def test_warns_when_a_celltype_has_no_training_track():
    ds = ax.testing.simulate_compendium(n_celltypes=3, n_assays=2, n_positions=600, seed=0)
    ds = ds.avocado.mask([("C0", "A0"), ("C0", "A1")])
    with pytest.warns(ax.AvocadoXrWarning, match="C0"):
        ax.fit(ds, epochs=1, **SMALL)


def test_bfloat16_training_runs(sim):
    model = ax.fit(sim, epochs=1, precision="bfloat16", **SMALL)
    assert np.isfinite(model.history[0]["loss"])


def test_gpu_training_matches_contract(sim, device):
    model = ax.fit(sim, epochs=1, n_layers=1, n_nodes=16, batch_size=500, device=device)
    assert next(model.net.parameters()).device.type == device
    imp = model.impute(sim, merge=False).imputed.values
    assert np.isfinite(imp).all()


def test_real_pilot_heldout_beats_both_baselines(pilot):
    """The issue's check: demo-size network, 10 epochs, (E065, H3K4me3) held out."""
    pair = ("E065", "H3K4me3")
    model = pilot.avocado.fit(
        epochs=10, validation=[pair], batch_size=10_000, device="cpu", **DEMO_NETWORK
    )
    truth = pilot.signal.sel(celltype=pair[0], assay=pair[1]).values
    train = pilot.avocado.mask([pair])
    avg = float(((average_baseline(train, *pair).values - truth) ** 2).mean())
    constant = float(((mean_baseline(train, *pair).values - truth) ** 2).mean())
    held_out = model.history[-1]["val_mse"]
    assert held_out < constant and held_out < avg, (held_out, constant, avg)
