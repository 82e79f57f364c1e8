"""Training: learning, determinism, checkpoints and resumption, validation, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import avocado_xr as ax
from avocado_xr.config import DEMO_NETWORK
from avocado_xr.evaluation.baselines import average_baseline, mean_baseline
from avocado_xr.exceptions import CheckpointError, ConfigError, InvalidSignalError

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
    assert model.training_info["validation_tracks"] == [f"{pair[0]}/{pair[1]}"]
    assert f"{pair[0]}/{pair[1]}" not in model.training_info["train_tracks"]


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


def test_resume_continues_from_the_last_checkpoint(sim, tmp_path):
    pair = _pair(sim)
    uninterrupted = ax.fit(sim, epochs=4, validation=[pair], **SMALL)
    first = ax.fit(sim, epochs=2, validation=[pair], checkpoint=tmp_path / "ckpt", **SMALL)
    assert (tmp_path / "ckpt" / "checkpoint.json").exists()
    resumed = ax.fit(sim, epochs=4, validation=[pair], checkpoint=tmp_path / "ckpt", **SMALL)
    # epochs 1-2 come from the checkpoint (their timings are the first run's, not re-measured)
    assert resumed.history[:2] == first.history
    assert [h["epoch"] for h in resumed.history] == [1, 2, 3, 4]
    for a, b in zip(resumed.history, uninterrupted.history, strict=True):
        assert a["loss"] == b["loss"] and a["val_mse"] == b["val_mse"]
    for k, v in _state(resumed).items():
        torch.testing.assert_close(v, _state(uninterrupted)[k], rtol=0, atol=0)
    done = ax.fit(sim, epochs=4, validation=[pair], checkpoint=tmp_path / "ckpt", **SMALL)
    assert done.history == resumed.history  # nothing re-ran
    for k, v in _state(done).items():
        torch.testing.assert_close(v, _state(resumed)[k], rtol=0, atol=0)


def test_checkpoint_of_another_run_is_refused(sim, tmp_path):
    ax.fit(sim, epochs=2, checkpoint=tmp_path, **SMALL)
    with pytest.raises(CheckpointError, match="different run.*seed"):
        ax.fit(sim, epochs=2, checkpoint=tmp_path, seed=1, **SMALL)
    with pytest.raises(CheckpointError, match="different run.*precision"):
        ax.fit(sim, epochs=2, checkpoint=tmp_path, precision="bfloat16", **SMALL)
    with pytest.raises(CheckpointError, match="has 2 epochs but epochs=1"):
        ax.fit(sim, epochs=1, checkpoint=tmp_path, **SMALL)


@pytest.mark.parametrize("damage", ["flip", "truncate", "empty"])
def test_corrupt_checkpoint_is_detected_and_named(sim, tmp_path, damage):
    ax.fit(sim, epochs=1, checkpoint=tmp_path, **SMALL)
    (state,) = tmp_path.glob("checkpoint-epoch*.pt")
    data = bytearray(state.read_bytes())
    if damage == "flip":
        data[len(data) // 2] ^= 0xFF
    elif damage == "truncate":
        data = data[: len(data) // 2]
    else:
        data = b""
    state.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=state.name + ".*corrupt"):
        ax.fit(sim, epochs=2, checkpoint=tmp_path, **SMALL)


def test_checkpoint_path_is_checked_before_training(sim, tmp_path):
    (tmp_path / "file").write_text("not a directory")
    with pytest.raises(CheckpointError, match="is a file; pass a directory"):
        ax.fit(sim, epochs=1, checkpoint=tmp_path / "file", **SMALL)


def test_input_errors(sim):
    with pytest.raises(ConfigError, match="n_nodez"):
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


def test_bfloat16_matches_float32_on_real_data(sample):
    """bf16 autocast reaches the held-out MSE of fp32 within a few percent (real tracks)."""
    pair = ("E065", "H3K4me3")
    options = dict(epochs=3, validation=[pair], batch_size=2_000, device="cpu", **DEMO_NETWORK)
    fp32 = ax.fit(sample, **options).history[-1]["val_mse"]
    bf16 = ax.fit(sample, precision="bfloat16", **options).history[-1]["val_mse"]
    assert abs(bf16 - fp32) < 0.05 * fp32, (bf16, fp32)


def test_genome_l2_shrinks_the_genome_factors(sim):
    plain = ax.fit(sim, epochs=2, **SMALL)
    shrunk = ax.fit(sim, epochs=2, genome_l2=1.0, **SMALL)
    # each 25-bp row takes one Adam step per epoch; coarse rows take many
    for table, factor in (("genome_25bp", 0.95), ("genome_250bp", 0.6), ("genome_5kbp", 0.5)):
        norm = [float(getattr(m.net, table).weight.detach().pow(2).mean()) for m in (plain, shrunk)]
        assert norm[1] < factor * norm[0], (table, norm)


def test_factor_l2_shrinks_the_celltype_and_assay_factors(sim):
    plain = ax.fit(sim, epochs=2, **SMALL)
    shrunk = ax.fit(sim, epochs=2, factor_l2=1.0, **SMALL)
    for table in ("celltype", "assay"):
        norm = [float(getattr(m.net, table).weight.detach().pow(2).mean()) for m in (plain, shrunk)]
        assert norm[1] < 0.5 * norm[0], (table, norm)
    genome = [float(m.net.genome_25bp.weight.detach().pow(2).mean()) for m in (plain, shrunk)]
    assert genome[1] > 0.5 * genome[0], genome  # the genome factors are not its target
    with pytest.raises(ConfigError, match="factor_l2"):
        ax.fit(sim, epochs=1, factor_l2=-1.0, **SMALL)


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
