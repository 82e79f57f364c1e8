"""Bad inputs and faults: nothing silently wrong, no crash, and errors that name the culprit.

Each case asserts the package's exception type (or the CLI's exit status 2 and one line on
stderr) and that the message names what is wrong.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
import xarray as xr
from hypothesis import given, settings
from hypothesis import strategies as st

import avocado_xr as ax
from avocado_xr.cli import main
from avocado_xr.exceptions import (
    DimensionError,
    ExportError,
    InvalidSignalError,
    ModelFileError,
    RegionError,
    StoreError,
    UnknownCelltypeError,
)

SMALL = {"n_layers": 1, "n_nodes": 8, "batch_size": 500, "device": "cpu"}


@pytest.fixture()
def sim():
    return ax.testing.simulate_compendium(n_celltypes=3, n_assays=3, n_positions=2_000, seed=5)


@pytest.fixture()
def store(sim, tmp_path):
    path = tmp_path / "sim.zarr"
    ax.save_compendium(sim, path, position_chunk=500)
    return path


def _observed(ds) -> tuple[int, int, str, str]:
    c, a = ax.observed_pairs(ds)[0]
    return list(ds.celltype.values).index(c), list(ds.assay.values).index(a), c, a


# ------------------------------------------------------------------------ 1. NaN in training


@pytest.mark.parametrize("where", ["one value", "whole track"])
def test_nan_in_an_observed_track_stops_training(sim, where):
    i, j, c, a = _observed(sim)
    broken = sim.copy(deep=True)
    broken.signal.values[i, j, 700 if where == "one value" else slice(None)] = np.nan
    with pytest.raises(InvalidSignalError, match=rf"\('{c}', '{a}'\).*NaN.*positions"):
        ax.fit(broken, epochs=1, **SMALL)


def test_deleted_chunk_is_an_error_not_nan(store, sim):
    i, j, c, a = _observed(sim)
    chunk = store / "signal" / "c" / str(i) / str(j) / "2"
    chunk.unlink()
    lazy = ax.open_compendium(store)
    with pytest.raises(StoreError, match=rf"\('{c}', '{a}'\), positions 1000-1500.*missing"):
        ax.fit(lazy, epochs=1, **SMALL)
    assert any("missing" in p and f"'{c}'" in p for p in ax.verify_store(store))


def test_cli_fit_of_a_nan_track_exits_2_with_one_line(sim, tmp_path, capsys):
    i, j, c, a = _observed(sim)
    broken = sim.copy(deep=True)
    broken.signal.values[i, j, 5] = np.nan
    ax.save_compendium(broken, tmp_path / "b.zarr", position_chunk=500)
    args = ["fit", str(tmp_path / "b.zarr"), str(tmp_path / "m"), "--epochs", "1", "--quiet"]
    assert main([*args, "--n-layers", "1", "--n-nodes", "8", "--device", "cpu"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"('{c}', '{a}')" in err[0] and "NaN" in err[0]
    assert not (tmp_path / "m").exists()  # no model written


# ------------------------------------------------------------------------ 2. corruption


def test_flipped_bytes_in_a_chunk_are_detected_and_named(store, sim):
    i, j, c, a = _observed(sim)
    chunk = store / "signal" / "c" / str(i) / str(j) / "1"
    data = bytearray(chunk.read_bytes())
    for k in range(64):  # 64 flipped bytes, as in the report
        data[(17 * k) % len(data)] ^= 0x5A
    chunk.write_bytes(bytes(data))
    lazy = ax.open_compendium(store)
    with pytest.raises(StoreError, match=rf"\('{c}', '{a}'\), positions 500-1000.*chunk file"):
        lazy.signal.sel(celltype=c, assay=a).load()
    with pytest.raises(StoreError, match=f"'{c}'"):
        ax.fit(lazy, epochs=1, **SMALL)
    problems = ax.verify_store(store)
    assert len(problems) == 1 and str(chunk) in problems[0]


def test_verify_command(store, sim, capsys):
    assert main(["verify", str(store), "--quiet"]) == 0
    assert "intact" in capsys.readouterr().out
    i, j, _, _ = _observed(sim)
    (store / "signal" / "c" / str(i) / str(j) / "0").write_bytes(b"garbage")
    assert main(["verify", str(store), "--quiet"]) == 1
    assert "1 problem" in capsys.readouterr().out


@pytest.mark.parametrize("offset", [0.1, 0.5, 0.9])
def test_random_bytes_in_model_weights_are_detected(sim, tmp_path, offset):
    model = ax.fit(sim, epochs=1, **SMALL)
    model.save(tmp_path / "m")
    weights = tmp_path / "m" / "weights.pt"
    data = bytearray(weights.read_bytes())
    at = int(offset * len(data))
    data[at : at + 8] = np.random.default_rng(1).bytes(8)
    weights.write_bytes(bytes(data))
    with pytest.raises(ModelFileError, match="weights.pt does not match the SHA-256"):
        ax.load_model(tmp_path / "m")


# ------------------------------------------------------------------------ 3. wrong inputs


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda s: np.r_[-25, s[1:]], "must be >= 0"),
        (lambda s: np.r_[10, s[1:]], "does not start on a 25-bp boundary"),
        (lambda s: np.r_[s[:3], s[2], s[4:]], "strictly increase"),  # a duplicate
        (lambda s: np.r_[s[:3], s[4], s[3], s[5:]], "strictly increase"),  # decreasing
    ],
)
def test_bad_coordinates_are_refused(sim, change, message):
    plain = sim.drop_indexes(["chrom", "start"])  # user-built coordinates, not our index
    bad = plain.assign_coords(start=("position", change(sim.start.values)))
    with pytest.raises(DimensionError, match=message):
        ax.validate(bad)
    with pytest.raises(DimensionError, match=message):
        ax.fit(bad, epochs=1, **SMALL)


@given(st.data())
@settings(max_examples=30, deadline=None)
def test_coordinates_property(data):
    """Sorted, unique, on-grid starts per chromosome pass; one swap or duplicate fails."""
    n = data.draw(st.integers(4, 40))
    gaps = data.draw(st.lists(st.integers(1, 4), min_size=n, max_size=n))
    start = np.cumsum(gaps) * 25
    chrom = np.array(["chr1"] * n, dtype=object)
    ds = ax.make_compendium(
        np.zeros((1, 1, n), "f4"), celltypes=["C"], assays=["A"], chrom=chrom, start=start
    )
    k = data.draw(st.integers(1, n - 1))
    broken = start.copy()
    broken[k] = broken[k - 1] if data.draw(st.booleans()) else broken[k - 1] - 25
    with pytest.raises(DimensionError):
        ax.validate(ds.drop_indexes(["chrom", "start"]).assign_coords(start=("position", broken)))


def test_integer_labels_are_refused(sim):
    numbered = sim.assign_coords(celltype=[0, 1, 2])
    with pytest.raises(DimensionError, match="celltype labels must be strings"):
        ax.validate(numbered)
    with pytest.raises(DimensionError, match="celltype labels must be strings"):
        ax.mask(numbered, [(0, "A0")])


# ------------------------------------------------------------------------ 5. work not lost


def test_cli_fit_checks_the_model_directory_before_training(tmp_path, capsys):
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "model.json").write_text("{}")
    # the store does not even exist: the output check comes first, before any work
    assert main(["fit", str(tmp_path / "nothing.zarr"), str(tmp_path / "m")]) == 2
    assert "already exists; pass --overwrite" in capsys.readouterr().err
    (tmp_path / "file").write_text("x")
    assert main(["fit", str(tmp_path / "nothing.zarr"), str(tmp_path / "file" / "m")]) == 2
    assert "is a file" in capsys.readouterr().err


def test_cli_impute_honours_region_without_store(sim, tmp_path, capsys):
    model = ax.fit(sim, epochs=1, **SMALL)
    model.save(tmp_path / "m")
    args = ["impute", str(tmp_path / "m"), str(tmp_path / "r.zarr"), "--quiet"]
    assert main([*args, "--region", "chr2:0-1,000"]) == 0
    written = xr.open_zarr(tmp_path / "r.zarr", consolidated=False)
    assert written.sizes["position"] == 40 and set(written.chrom.values) == {"chr2"}
    assert main([*args[:2], str(tmp_path / "x.zarr"), "--region", "chr9:0-100"]) == 2
    assert "chr9" in capsys.readouterr().err
    assert not (tmp_path / "x.zarr").exists()


# ------------------------------------------------------------------------ 6. no crash


def test_export_into_an_unwritable_place_is_an_error_not_a_crash(sim, tmp_path):
    genome = {"chr1": 50_000, "chr2": 50_000}
    (tmp_path / "file").write_text("x")
    with pytest.raises(ExportError, match="Cannot create the output folder"):
        ax.to_bigwig(sim, tmp_path / "file" / "out", genome=genome)
    out = tmp_path / "out"
    name = "C0.A0.bigWig.partial"
    (out / name).mkdir(parents=True)  # pyBigWig would crash opening it for writing
    with pytest.raises(ExportError, match="Cannot write"):
        ax.to_bigwig(sim.sel(celltype=["C0"], assay=["A0"]), out, genome=genome)


# ------------------------------------------------------------------------ 7. clear errors


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"epochs": 1.5}, "epochs must be an integer"),
        ({"epochs": 1, "n_nodes": 16.7}, "n_nodes must be an integer"),
        ({"epochs": 1, "validation": ("C0", "A0")}, r"list of \(celltype, assay\) pairs"),
        ({"epochs": 1, "architecture": "banana"}, "architecture must be one of"),
        ({"epochs": 1, "device": "banana"}, "not a torch device"),
    ],
)
def test_fit_argument_errors(sim, kwargs, message):
    with pytest.raises(ax.AvocadoXrError, match=message):
        ax.fit(sim, **{**SMALL, **kwargs})


def test_mask_of_one_bare_pair(sim):
    with pytest.raises(InvalidSignalError, match=r"\[\('C0', 'A0'\)\]"):
        ax.mask(sim, ("C0", "A0"))


def test_stores_that_are_not_compendia(tmp_path):
    import zarr

    zarr.open_group(tmp_path / "v2.zarr", mode="w", zarr_format=2)
    with pytest.raises(StoreError, match="zarr v2 store"):
        ax.open_compendium(tmp_path / "v2.zarr")
    xr.Dataset({"x": ("y", [1, 2])}).to_zarr(tmp_path / "other.zarr", zarr_format=3)
    with pytest.raises(StoreError, match="not a compendium.*signal"):
        ax.open_compendium(tmp_path / "other.zarr")


def test_impute_into_a_dataset_of_other_celltypes(sim):
    model = ax.fit(sim, epochs=1, **SMALL)
    other = sim.sel(celltype=["C0", "C1"])
    with pytest.raises(UnknownCelltypeError, match=r"\['C2'\].*merge=False"):
        model.impute(other)
    assert model.impute(other, merge=False).sizes["celltype"] == 3


@pytest.mark.parametrize(
    "text, why", [("chr1:100-chr2:200", "one chromosome"), ("chr1:5-", "Cannot parse")]
)
def test_region_strings(text, why):
    with pytest.raises(RegionError, match=why):
        ax.bins.parse_region(text)


@given(st.text(max_size=30))
@settings(max_examples=200, deadline=None)
def test_region_parser_never_crashes(text):
    try:
        chrom, start, end = ax.bins.parse_region(text)
    except RegionError:
        return
    assert 0 <= start < end and chrom


@pytest.mark.parametrize(
    "argv, option",
    [
        (["fit", "s.zarr", "m", "--epochs", "-3"], "--epochs"),
        (["fit", "s.zarr", "m", "--architecture", "banana"], "--architecture"),
        (["evaluate", "sample", "--k", "1"], "--k"),
        (["demo", "--epochs", "-1"], "--epochs"),
        (["evaluate", "sample", "--methods", "chromimpute"], "--methods"),
    ],
)
def test_cli_option_errors_are_one_line(argv, option, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and option in err[0]


def test_cli_errors_after_parsing_are_one_line(store, tmp_path, capsys):
    argv = ["fit", str(store), str(tmp_path / "m"), "--device", "cuda", "--quiet"]
    if not ax.model.avocado.torch.cuda.is_available():
        assert main(argv) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "cuda" in err[0] and "device='cpu'" in err[0]
    manifest = tmp_path / "m.tsv"
    manifest.write_text("celltype\tassay\tpath_or_url\nC\tA\tnone.bw\n")
    argv = ["ingest", str(manifest), str(tmp_path / "c.zarr"), "--genome", "hg19"]
    assert main([*argv, "--missing", "banana"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "missing" in err[0] and "banana" in err[0]


# ------------------------------------------------------------------------ kill and rerun

FIT_CRASH = """
import os, signal, sys
import avocado_xr as ax
from avocado_xr.model import train

calls, original = [0], train._train_epoch

def crashing(*args, **kwargs):
    calls[0] += 1
    if calls[0] == 3:  # SIGKILL in the middle of the third epoch
        os.kill(os.getpid(), signal.SIGKILL)
    return original(*args, **kwargs)

train._train_epoch = crashing
ds = ax.open_compendium(sys.argv[1])
ax.fit(ds, epochs=4, checkpoint=sys.argv[2], n_layers=1, n_nodes=8, batch_size=500,
       device="cpu")
"""

IMPUTE_CRASH = """
import os, signal, sys
from avocado_xr.cli import main
from avocado_xr.model.impute import ImputeState

calls, original = [0], ImputeState.predict_block

def crashing(*args, **kwargs):
    calls[0] += 1
    if calls[0] > 2:
        os.kill(os.getpid(), signal.SIGKILL)  # killed after two blocks were written
    return original(*args, **kwargs)

ImputeState.predict_block = crashing
main(sys.argv[1:])
"""

EXPORT_CRASH = """
import os, signal, sys
import avocado_xr as ax
from avocado_xr.bigwig import export

calls, original = [0], export._add_run

def crashing(*args, **kwargs):
    calls[0] += 1
    if calls[0] > 3:
        os.kill(os.getpid(), signal.SIGKILL)
    return original(*args, **kwargs)

export._add_run = crashing
ds = ax.open_compendium(sys.argv[1])
ax.to_bigwig(ds, sys.argv[2], genome={"chr1": 50_000, "chr2": 50_000})
"""


def _crash(tmp_path, script: str, *args) -> None:
    path = tmp_path / "crash.py"
    path.write_text(textwrap.dedent(script))
    # the same thread count as this process: float sums split over other threads round
    # differently (a dask process cluster leaves OMP_NUM_THREADS=1 in os.environ)
    threads = str(torch.get_num_threads())
    env = {**os.environ, "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads}
    run = subprocess.run([sys.executable, str(path), *map(str, args)], capture_output=True, env=env)
    assert run.returncode == -signal.SIGKILL, run.stderr.decode()[-2000:]


def test_fit_killed_mid_epoch_then_rerun_is_identical(store, tmp_path):
    _crash(tmp_path, FIT_CRASH, store, tmp_path / "ckpt")
    pointer = json.loads((tmp_path / "ckpt" / "checkpoint.json").read_text())
    assert pointer["epoch"] == 2  # the last complete epoch
    lazy = ax.open_compendium(store)
    resumed = ax.fit(lazy, epochs=4, checkpoint=tmp_path / "ckpt", **SMALL)
    whole = ax.fit(lazy, epochs=4, **SMALL)
    for key, value in whole.net.state_dict().items():
        assert (resumed.net.state_dict()[key] == value).all(), key


def test_impute_killed_mid_write_then_rerun_is_identical(sim, store, tmp_path):
    model = ax.fit(sim, epochs=1, **SMALL)
    model.save(tmp_path / "m")
    argv = ["impute", str(tmp_path / "m"), str(tmp_path / "out.zarr"), "--store", str(store)]
    argv.append("--quiet")
    _crash(tmp_path, IMPUTE_CRASH, *argv)
    assert not (tmp_path / "out.zarr").exists()  # nothing that looks finished
    assert (tmp_path / "out.zarr.partial").exists()
    assert main(argv) == 0
    assert main([*argv[:2], str(tmp_path / "ref.zarr"), *argv[3:]]) == 0
    again = xr.open_zarr(tmp_path / "out.zarr", consolidated=False).imputed.values
    reference = xr.open_zarr(tmp_path / "ref.zarr", consolidated=False).imputed.values
    np.testing.assert_array_equal(again, reference)


def test_export_killed_mid_write_then_rerun_is_identical(store, tmp_path):
    pytest.importorskip("pyBigWig")
    _crash(tmp_path, EXPORT_CRASH, store, tmp_path / "out")
    assert not list((tmp_path / "out").glob("*.bigWig"))  # only .partial files
    genome = {"chr1": 50_000, "chr2": 50_000}
    lazy = ax.open_compendium(store)
    files = ax.to_bigwig(lazy, tmp_path / "out", genome=genome)
    reference = ax.to_bigwig(lazy, tmp_path / "ref", genome=genome)
    assert [f.read_bytes() for f in files] == [f.read_bytes() for f in reference]
    shutil.rmtree(tmp_path / "ref")
