"""Importing models saved by the original Avocado (Keras .json + .h5) without Keras: the real
reference model predicts what the original predicted; synthetic files in the same layout cover
genome-wide (per-chromosome) models and every damaged-file case."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from _original_files import EMBEDDINGS, original_predict, original_weights, write_original

import avocado_xr as ax
from avocado_xr.cli import main
from avocado_xr.exceptions import AvocadoXrWarning, ConfigError, ModelFileError
from avocado_xr.genome import GenomeLayout

CELLTYPES, ASSAYS = ["C0", "C1", "C2"], ["A0", "A1"]


@pytest.fixture
def small(tmp_path):
    """A 1,234-position model over two regions (flat coarse bins straddle the gap)."""
    weights = original_weights(CELLTYPES, ASSAYS, 1_234)
    prefix = write_original(tmp_path / "small", CELLTYPES, ASSAYS, weights)
    layout = GenomeLayout(("chr1", "chr2"), (1_000, 50_000), (1_005, 229))
    return prefix, weights, layout


# ------------------------------------------------------------------------ the real reference


@pytest.fixture(scope="module")
def reference(shared_data):
    folder = shared_data / "reference_model"
    layout = ax.datasets.pilot_layout().subset(0, 50_000)
    model = ax.import_avocado(folder / "avocado_pilot50k", layout=layout)
    return folder, model


def test_reference_model_predicts_what_the_original_predicted(reference, pilot):
    """Every one of the 25 tracks, at every position, within 1e-4 of the original's own
    predictions, through the labelled (lazy) imputation."""
    folder, model = reference
    ds = pilot.isel(position=slice(0, 50_000))
    imputed = model.impute(ds, merge=False).imputed
    assert (imputed.start.values == ds.start.values).all()
    values = imputed.values
    expected = np.load(folder / "reference_predictions.npz")
    assert len(expected.files) == 25
    worst = 0.0
    for key in expected.files:
        celltype, assay = key.split(".")
        got = values[model.celltypes.index(celltype), model.assays.index(assay)]
        worst = max(worst, float(np.abs(got - expected[key]).max()))
    assert worst < 1e-4, worst
    cfg = model.config
    assert (cfg.coarse_rule, cfg.dropout, cfg.n_layers, cfg.n_nodes) == ("flat", 0.0, 2, 256)
    tracks = model.training_info["train_tracks"]
    assert len(tracks) == 24 and "E065/H3K4me3" not in tracks
    # the held-out track scores as it did for the original
    held = imputed.sel(celltype="E065", assay="H3K4me3").values
    truth = ds.signal.sel(celltype="E065", assay="H3K4me3").values
    fixture = json.loads((folder / "fixture.json").read_text())
    assert abs(float(np.mean((held - truth) ** 2)) - fixture["held_out_mse"]) < 1e-4


def test_reference_round_trip_keeps_rule_predictions_and_experiments(reference, tmp_path):
    _, model = reference
    model.save(tmp_path / "m")
    back = ax.load_model(tmp_path / "m")
    assert back.config == model.config and back.config.coarse_rule == "flat"
    assert back.training_info["train_tracks"] == model.training_info["train_tracks"]
    np.testing.assert_array_equal(back.predict("E117", "H3K9me3"), model.predict("E117", "H3K9me3"))


# ------------------------------------------------------------------------ synthetic files


def test_import_matches_the_original_forward_pass_with_flat_bins(small):
    prefix, weights, layout = small
    model = ax.import_avocado(prefix, layout=layout)
    assert model.celltypes == CELLTYPES and model.assays == ASSAYS and model.net is not None
    positions = np.arange(layout.n_positions)
    for c in range(3):
        for a in range(2):
            expected = original_predict(weights, c, a, positions)
            got = model.predict(CELLTYPES[c], ASSAYS[a])
            np.testing.assert_allclose(got, expected, atol=1e-5)
    # the original's i // 10 straddles the gap between the regions (positions 1,000-1,009)
    assert model.net.index_250bp[1_000:1_010].tolist() == [100] * 10
    cfg = model.config
    assert (cfg.lr, cfg.embedding_init, cfg.batch_size) == (0.001, 0.05, 1_000)
    # a Dataset over the positions works as the layout too
    same = ax.import_avocado(str(prefix) + ".h5", layout=model.positions())
    np.testing.assert_array_equal(same.predict("C1", "A0"), model.predict("C1", "A0"))


def test_factors_of_a_flat_model_label_coarse_bins_by_their_positions(small):
    prefix, weights, layout = small
    model = ax.import_avocado(prefix, layout=layout)
    fac = model.factors()
    g250 = fac.genome_factors_250bp
    assert fac.sizes["position_250bp"] == 124 and fac.sizes["position_5kbp"] == 7
    np.testing.assert_array_equal(g250.values, weights["genome_250bp_embedding"][0][:124])
    chrom, start = layout.coords_at([1_000, 1_000, 1_230])
    # bin 100 holds positions 1,000-1,009: the last 5 bins of chr1 and the first 5 of chr2
    assert fac.first_position_250bp.values[100] == 1_000
    assert (str(fac.chrom_250bp.values[100]), int(fac.start_250bp.values[100])) == (
        chrom[0],
        start[0],
    )
    assert fac.first_position_5kbp.values[6] == 1_200
    features = fac.genome_features.values
    for p in (0, 1_004, 1_005, 1_233):
        rows = zip(EMBEDDINGS[2:], (p, p // 10, p // 200), strict=True)
        expected = np.concatenate([weights[f"{n}_embedding"][0][i] for n, i in rows])
        np.testing.assert_array_equal(features[p], expected)


def test_missing_weights_file_names_it_and_the_fix(small):
    prefix, _, layout = small
    Path(str(prefix) + ".h5").unlink()
    with pytest.raises(ModelFileError, match=r"small\.h5 is missing.*copy or download"):
        ax.import_avocado(prefix, layout=layout)


def test_missing_json_and_no_model_at_all(small, tmp_path):
    prefix, _, layout = small
    Path(str(prefix) + ".json").unlink()
    with pytest.raises(ModelFileError, match=r"small\.h5 has no small\.json"):
        ax.import_avocado(prefix, layout=layout)
    with pytest.raises(ModelFileError, match="No original Avocado model"):
        ax.import_avocado(tmp_path / "nothing", layout=layout)


def test_truncated_weights_file_is_refused(small):
    prefix, _, layout = small
    h5 = Path(str(prefix) + ".h5")
    data = h5.read_bytes()
    h5.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelFileError, match=r"small\.h5 cannot be read.*truncated"):
        ax.import_avocado(prefix, layout=layout)
    h5.write_bytes(b"")  # a failed download
    with pytest.raises(ModelFileError, match="truncated"):
        ax.import_avocado(prefix, layout=layout)


def test_json_and_weights_of_different_models_are_refused(tmp_path):
    layout = GenomeLayout(("chr1",), (0,), (500,))
    weights = original_weights(CELLTYPES, ASSAYS, 500)
    # one more cell type in the JSON than rows in the weights
    prefix = write_original(tmp_path / "a", CELLTYPES, ASSAYS, weights)
    meta = json.loads(Path(str(prefix) + ".json").read_text())
    meta["celltypes"].append("C9")
    Path(str(prefix) + ".json").write_text(json.dumps(meta))
    with pytest.raises(ModelFileError, match=r"a\.h5: layer 'celltype_embedding'.*a\.json"):
        ax.import_avocado(prefix, layout=layout)
    # other hidden sizes
    meta["celltypes"].pop()
    meta["n_nodes"] = 32
    Path(str(prefix) + ".json").write_text(json.dumps(meta))
    with pytest.raises(ModelFileError, match="'dense_0' has weights of shape"):
        ax.import_avocado(prefix, layout=layout)
    # fewer layers in the JSON than in the weights
    meta["n_nodes"], meta["n_layers"] = 16, 1
    Path(str(prefix) + ".json").write_text(json.dumps(meta))
    with pytest.raises(ModelFileError, match="has a layer 'dense_1'.*n_layers=1"):
        ax.import_avocado(prefix, layout=layout)
    # more positions than the genome table has
    meta["n_layers"], meta["n_genomic_positions"] = 2, 600
    Path(str(prefix) + ".json").write_text(json.dumps(meta))
    with pytest.raises(ModelFileError, match="genome_25bp_embedding"):
        ax.import_avocado(prefix, layout=GenomeLayout(("chr1",), (0,), (600,)))
    # a layer renamed
    meta["n_genomic_positions"] = 500
    Path(str(prefix) + ".json").write_text(json.dumps(meta))
    with h5py.File(str(prefix) + ".h5", "r+") as f:
        names = [
            n.decode() if isinstance(n, bytes) else n
            for n in f["model_weights"].attrs["layer_names"]
        ]
        f["model_weights"].attrs["layer_names"] = np.array(
            [("hidden" if n == "dense_1" else n).encode() for n in names]
        )
    with pytest.raises(ModelFileError, match="no layer 'dense_1'"):
        ax.import_avocado(prefix, layout=layout)


def test_other_formats_are_refused(small, tmp_path):
    prefix, _, layout = small
    with h5py.File(str(prefix) + ".h5", "w") as f:  # Keras 3 ".weights.h5"-like
        f.create_group("layers").create_group("dense").create_dataset("vars/0", data=np.ones(3))
    with pytest.raises(ModelFileError, match="Keras 3 weights file, not a Keras HDF5 model"):
        ax.import_avocado(prefix, layout=layout)
    Path(str(prefix) + ".json").write_text(json.dumps({"format": "avocado_xr-model-1"}))
    with pytest.raises(ModelFileError, match="avocado_xr model file.*load_model"):
        ax.import_avocado(prefix, layout=layout)
    Path(str(prefix) + ".json").write_text("{not json")
    with pytest.raises(ModelFileError, match="not valid JSON"):
        ax.import_avocado(prefix, layout=layout)
    ours = ax.fit(ax.testing.simulate_compendium(n_positions=300), epochs=0, n_layers=1,
                  n_nodes=4, device="cpu")  # fmt: skip
    ours.save(tmp_path / "ours")
    with pytest.raises(ModelFileError, match="avocado_xr model directory.*load_model"):
        ax.import_avocado(tmp_path / "ours", layout=layout)
    with pytest.raises(ModelFileError, match="avocado_xr model file.*load_model"):
        ax.import_avocado(tmp_path / "ours" / "model", layout=layout)


def test_nothing_in_the_files_is_executed(small, tmp_path, monkeypatch):
    """No Keras/TensorFlow and no unpickling: the import works with them unavailable. A graph
    with a Lambda layer carrying marshalled code that would leave a marker file, and an
    attribute holding a pickle that would do the same, are never run."""
    import base64
    import marshal
    import pickle
    import sys

    prefix, weights, layout = small
    marker = tmp_path / "code-ran"

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    unpickle = pickle.loads
    for name in ("keras", "tensorflow", "tf_keras"):
        monkeypatch.setitem(sys.modules, name, None)  # any import of them fails
    monkeypatch.setattr(pickle, "loads", None)
    monkeypatch.setattr(pickle, "load", None)
    with h5py.File(str(prefix) + ".h5", "r+") as f:
        f.attrs["evil"] = np.void(pickle.dumps(Evil()))
    model = ax.import_avocado(prefix, layout=layout)
    expected = original_predict(weights, 1, 1, np.arange(layout.n_positions))
    np.testing.assert_allclose(model.predict("C1", "A1"), expected, atol=1e-5)
    payload = compile(f"open({str(marker)!r}, 'w').close()", "<lambda>", "exec")
    code = base64.b64encode(marshal.dumps(payload)).decode()
    with h5py.File(str(prefix) + ".h5", "r+") as f:
        config = json.loads(f.attrs["model_config"])
        config["config"]["layers"].append(
            {"class_name": "Lambda", "name": "lambda",
             "config": {"function": [code, None, None], "function_type": "lambda"},
             "inbound_nodes": [[["y_pred", 0, 0, {}]]]}
        )  # fmt: skip
        f.attrs["model_config"] = json.dumps(config)
    with pytest.raises(ModelFileError, match=r"lambda \(Lambda\).*never executes"):
        ax.import_avocado(prefix, layout=layout)
    assert not marker.exists()
    # both payloads are live: running either would have left the marker
    exec(marshal.loads(base64.b64decode(code)))
    assert marker.exists()
    marker.unlink()
    with h5py.File(str(prefix) + ".h5", "r") as f:
        unpickle(f.attrs["evil"].tobytes()).close()
    assert marker.exists()


def test_without_h5py_the_error_says_which_extra_to_install(small, monkeypatch):
    import sys

    prefix, _, layout = small
    monkeypatch.setitem(sys.modules, "h5py", None)
    with pytest.raises(ImportError, match=r"needs h5py.*avocado-xr\[import\]"):
        ax.import_avocado(prefix, layout=layout)


def test_layout_is_required_and_checked(small):
    prefix, _, layout = small
    with pytest.raises(ConfigError, match="does not record which genomic bins.*layout="):
        ax.import_avocado(prefix)
    with pytest.raises(ConfigError, match="1,234 genomic positions but layout= has 1,000"):
        ax.import_avocado(prefix, layout=layout.subset(0, 1_000))


def test_stale_experiment_list_is_flagged(tmp_path):
    weights = original_weights(CELLTYPES, ASSAYS, 300)
    experiments = [("C0", "A0"), ("C1", "A1")]  # C2 was added by fit_celltypes, unrecorded
    prefix = write_original(tmp_path / "m", CELLTYPES, ASSAYS, weights, experiments=experiments)
    with pytest.warns(AvocadoXrWarning, match=r"no training experiment of \['C2'\].*stale"):
        model = ax.import_avocado(prefix, layout=GenomeLayout(("chr1",), (0,), (300,)))
    assert model.training_info["train_tracks"] == ["C0/A0", "C1/A1"]


# ------------------------------------------------------------------------ genome-wide models

SIZES = {"chr1": 30_010, "chr2": 20_000, "chr3": 7_777}  # chr2: a multiple of 25


def _rows(size: int) -> int:
    """Rows of a published model: size // 25 + 1 (one spare row when 25 divides size)."""
    return size // 25 + 1


@pytest.fixture
def published(tmp_path):
    """Per-chromosome files named like the published models, sharing one network."""
    folder = tmp_path / "models"
    folder.mkdir()
    head = original_weights(CELLTYPES, ASSAYS, 10, seed=99)
    weights = {}
    for k, (chrom, size) in enumerate(SIZES.items()):
        weights[chrom] = original_weights(CELLTYPES, ASSAYS, _rows(size), seed=k, head=head)
        write_original(folder / f"avocado-{chrom}", CELLTYPES, ASSAYS, weights[chrom])
    return folder, weights


def test_genome_wide_import_writes_factors_per_chromosome(published, tmp_path):
    folder, weights = published
    model = ax.import_avocado(folder, genome=SIZES, store=tmp_path / "f.zarr")
    assert model.net is None and model.genome.missing() == []
    assert model.config.coarse_rule == "segment"
    assert model.layout.chrom == ("chr1", "chr2", "chr3")
    # whole chromosomes: ceil(size / 25) bins; chr2's spare row past its end is dropped
    assert model.layout.n_bins == (1_201, 800, 312)
    offset = 0
    for chrom, n in zip(model.layout.chrom, model.layout.n_bins, strict=True):
        positions = np.arange(n)
        for c, a in ((0, 1), (2, 0)):
            expected = original_predict(weights[chrom], c, a, positions)
            got = model.predict(CELLTYPES[c], ASSAYS[a], offset + positions)
            np.testing.assert_allclose(got, expected, atol=1e-5)
        offset += n
    # the head is the files' (identical in all of them)
    head = model.head.state_dict()
    np.testing.assert_array_equal(head["celltype.weight"], weights["chr1"]["celltype_embedding"][0])
    np.testing.assert_array_equal(head["hidden.0.weight"], weights["chr3"]["dense_0"][0].T)
    # saved and loaded, it reads the same store
    model.save(tmp_path / "m")
    back = ax.load_model(tmp_path / "m")
    np.testing.assert_array_equal(back.predict("C1", "A1"), model.predict("C1", "A1"))
    assert back.training_info["train_tracks"] == [f"{c}/{a}" for c in CELLTYPES for a in ASSAYS]


def test_flat_and_segment_rules_coincide_on_whole_chromosomes():
    from avocado_xr.config import AvocadoConfig
    from avocado_xr.model.network import coarse_indices

    layout = GenomeLayout.from_genome(SIZES)
    flat = coarse_indices(layout.chromosome("chr1")[1], AvocadoConfig(coarse_rule="flat"))
    segment = coarse_indices(layout.chromosome("chr1")[1], AvocadoConfig(coarse_rule="segment"))
    for f, s in zip(flat, segment, strict=True):
        np.testing.assert_array_equal(f, s)


def test_last_bin_of_every_chromosome_is_imputed_and_exported(published, tmp_path):
    """The original's avocado-impute drops each chromosome's last bin; we keep it (clipped to
    the chromosome's end in the bigWig)."""
    pybigwig = pytest.importorskip("pyBigWig")
    folder, weights = published
    model = ax.import_avocado(folder, genome=SIZES, store=tmp_path / "f.zarr")
    imputed = model.impute(celltypes="C0", assays="A1")
    files = ax.to_bigwig(imputed, tmp_path / "bw", genome=SIZES)
    bw = pybigwig.open(str(files[0]))
    try:
        last = bw.intervals("chr1", 30_000, 30_010)
        expected = original_predict(weights["chr1"], 0, 1, [1_200])[0]
        assert last[-1][:2] == (30_000, 30_010)
        assert abs(last[-1][2] - expected) < 1e-5
        assert bw.intervals("chr2", 19_975, 20_000)[-1][:2] == (19_975, 20_000)
    finally:
        bw.close()


def test_files_that_disagree_are_refused_before_anything_is_written(published, tmp_path):
    folder, weights = published
    changed = {k: [v.copy() for v in vals] for k, vals in weights["chr2"].items()}
    changed["dense_1"][0][0, 0] += 1e-3
    write_original(folder / "avocado-chr2", CELLTYPES, ASSAYS, changed)
    store = tmp_path / "f.zarr"
    with pytest.raises(ModelFileError, match=r"avocado-chr2\.h5 and .*avocado-chr1\.h5 have"):
        ax.import_avocado(folder, genome=SIZES, store=store)
    assert not store.exists()


def test_a_failed_download_stops_the_import_with_nothing_written(published, tmp_path, capsys):
    """The original's command writes an empty bigWig when a model download fails; ours stops
    before writing anything, naming the file."""
    folder, _ = published
    (folder / "avocado-chr3.h5").unlink()
    store, out = tmp_path / "f.zarr", tmp_path / "model"
    with pytest.raises(ModelFileError, match=r"avocado-chr3\.h5 is missing"):
        ax.import_avocado(folder, genome=SIZES, store=store)
    code = main(
        ["import-avocado", str(folder), str(out), "--genome", "hg19", "--store", str(store)]
    )
    assert code == 2 and "avocado-chr3.h5 is missing" in capsys.readouterr().err
    assert not store.exists() and not out.exists()
    with pytest.raises(ModelFileError, match=r"No model files for \['chr4'\]"):
        ax.import_avocado(folder, chroms=["chr1", "chr4"], store=store)


def test_wrong_assembly_and_missing_store(published, tmp_path):
    folder, _ = published
    with pytest.raises(ModelFileError, match="another assembly"):
        ax.import_avocado(folder, genome={**SIZES, "chr1": 10_000}, store=tmp_path / "f.zarr")
    with pytest.raises(ConfigError, match="pass store="):
        ax.import_avocado(folder, genome=SIZES)


def test_single_chromosome_file_needs_no_layout(published):
    folder, weights = published
    model = ax.import_avocado(folder / "avocado-chr3.json", genome=SIZES)
    assert model.layout.intervals() == [("chr3", 0, 7_800)] and model.layout.sizes == {
        "chr3": 7_777
    }
    expected = original_predict(weights["chr3"], 1, 0, np.arange(312))
    np.testing.assert_allclose(model.predict("C1", "A0"), expected, atol=1e-5)


def test_import_resumes_into_an_existing_store(published, tmp_path):
    folder, _ = published
    store = tmp_path / "f.zarr"
    first = ax.import_avocado(folder, genome=SIZES, store=store, chroms=["chr1", "chr2"])
    assert first.layout.chrom == ("chr1", "chr2")
    shutil.rmtree(store)
    model = ax.import_avocado(folder, genome=SIZES, store=store)
    again = ax.import_avocado(folder, genome=SIZES, store=store)  # everything done: no rewrite
    np.testing.assert_array_equal(
        again.predict("C2", "A1", np.arange(100)), model.predict("C2", "A1", np.arange(100))
    )


def test_cli_imports_the_fixture_layout(small, tmp_path, capsys):
    prefix, weights, _ = small
    code = main(["import-avocado", str(prefix), str(tmp_path / "m"), "--positions", "pilot",
                 "--slice", "0:1234"])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    model = ax.load_model(tmp_path / "m")
    assert model.layout == ax.datasets.pilot_layout().subset(0, 1_234)
    expected = original_predict(weights, 2, 1, np.arange(1_234))
    np.testing.assert_allclose(model.predict("C2", "A1"), expected, atol=1e-5)
    assert torch.equal(model.net.index_5kbp, torch.arange(1_234) // 200)
