"""bigWig reading: genomes, layouts, chromosome names, binning, file checks, real files."""

from __future__ import annotations

import pickle
import shutil

import dask
import numpy as np
import pyBigWig
import pytest
from _helpers import write_bw
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import avocado_xr as ax
from avocado_xr.assembly import genome_sizes
from avocado_xr.bigwig.chroms import check_chroms, harmonise_chroms
from avocado_xr.bigwig.integrity import check_bigwig_file
from avocado_xr.bigwig.reader import (
    BigWigArray,
    bin_means,
    file_chroms,
    read_bigwig,
    reader_name,
)
from avocado_xr.exceptions import (
    AvocadoXrError,
    BigWigReadError,
    ChromosomeError,
    ChromSizeError,
    ConfigError,
    GenomeError,
)
from avocado_xr.genome import GenomeLayout as Layout

REAL = {
    "trackplot_H1_H3K4me3_hg19_POU5F1.bw": ("hg19", "chr6", 31_125_000, 31_146_000),
    "trackplot_H1_H3K4me1_hg19_POU5F1.bw": ("hg19", "chr6", 31_125_000, 31_146_000),
    "sevenC_GM12878_Stat1.chr22_1-30000000.hg19.bigWig": ("hg19", "chr22", 16_000_000, 18_000_000),
    "bigtools_valid.chr17.bigWig": ("hg38", "chr17", 59_000, 217_000),
    "pyGenomeTracks_bigwig3_X_2.5e6_3.5e6.dm3.bw": ("dm3", "chrX", 2_499_000, 3_501_000),
}


def independent_bins(path, file_chrom, lo, hi, gaps="missing"):
    """Bin means from pyBigWig.intervals with a plain per-base float64 array."""
    base = np.full(hi - lo, np.nan)
    bw = pyBigWig.open(str(path))
    for s, e, v in bw.intervals(file_chrom, lo, hi) or ():
        base[max(s, lo) - lo : min(e, hi) - lo] = v
    bw.close()
    out = []
    for k in range(0, hi - lo, 25):
        window = base[k : k + 25]
        if gaps == "zero":
            out.append(np.nan_to_num(window).mean())
        else:
            out.append(np.nanmean(window) if np.isfinite(window).any() else np.nan)
    return np.array(out, dtype=np.float32)


def _has_pybigtools() -> bool:
    try:
        import pybigtools  # noqa: F401
    except ImportError:
        return False
    return True


needs_pybigtools = pytest.mark.skipif(
    not _has_pybigtools(), reason="pybigtools (the optional 'fast' extra) is not installed"
)


@pytest.fixture(params=["pyBigWig", pytest.param("pybigtools", marks=needs_pybigtools)])
def reader(request, monkeypatch):
    """Each bigWig reader in turn (the environment variable picks it)."""
    monkeypatch.setenv("AVOCADO_XR_BIGWIG_READER", request.param)
    assert reader_name() == request.param
    return request.param


# ----------------------------------------------------------------------------- genomes


def test_packaged_genomes():
    hg19, hg38, dm3 = (genome_sizes(g) for g in ("hg19", "hg38", "dm3"))
    assert len(hg19.sizes) == len(hg38.sizes) == 25
    assert hg19.sizes["chr1"] == 249_250_621 and hg38.sizes["chr1"] == 248_956_422
    assert hg19.sizes["chrM"] == 16_571 and hg38.sizes["chrM"] == 16_569
    assert sum(hg19.sizes.values()) == 3_095_693_983
    assert list(hg19.sizes)[:3] == ["chr1", "chr2", "chr3"]
    assert dm3.sizes["chr2L"] == 23_011_544 and len(dm3.sizes) == 15


def test_genome_from_file_and_errors(tmp_path):
    path = tmp_path / "mm10.chrom.sizes"
    path.write_text("chr1\t195471971\nchr2\t182113224\n")
    g = genome_sizes(path)
    assert g.name == "mm10" and g.sizes == {"chr1": 195471971, "chr2": 182113224}
    path.write_text("chr1\tbig\n")
    with pytest.raises(GenomeError, match="line 1"):
        genome_sizes(path)
    with pytest.raises(GenomeError, match="Unknown genome 'hg37'"):
        genome_sizes("hg37")
    with pytest.raises(GenomeError, match="chrZ"):
        genome_sizes("hg19").select(["chrZ"])


# ----------------------------------------------------------------------------- layouts


def test_pilot_bed_reproduces_roadmap_pilot_layout():
    from importlib import resources

    bed = resources.files("avocado_xr") / "data" / "encode_pilot_regions.hg19.bed"
    lay = Layout.from_regions(str(bed), "hg19")
    regions = ax.datasets.pilot_regions()
    assert lay.n_positions == 1_126_469
    assert list(lay.start) == regions.first_bin_start.tolist()
    assert list(lay.n_bins) == regions.n_bins.tolist()
    assert lay.offsets.tolist() == regions.offset.tolist()
    chrom, start = lay.coords()
    sample = ax.datasets.roadmap_pilot_sample()  # three of the regions, real coordinates
    names = sample.attrs["regions"].split(",")
    sub = Layout.from_regions(regions.set_index("name").loc[names].reset_index(), "hg19")
    chrom, start = sub.coords()
    np.testing.assert_array_equal(chrom, sample.chrom.values)
    np.testing.assert_array_equal(start, sample.start.values)


def test_region_rules_clip_and_overlap_errors():
    genome = {"chr1": 1_010, "chr2": 500}
    lay = Layout.from_regions([("chr1", 10, 40), ("chr1", 990, 1_010)], genome)
    assert lay.start == (0, 950) and lay.n_bins == (2, 3)  # clipped at 0 and at the end
    over = Layout.from_regions([("chr1", 10, 40)], genome, rule="overlap")
    assert over.start == (0,) and over.n_bins == (2,)
    with pytest.raises(GenomeError, match="share 25-bp bins"):
        Layout.from_regions([("chr1", 100, 200), ("chr1", 210, 300)], genome)
    with pytest.raises(GenomeError, match="'chr3'"):
        Layout.from_regions([("chr3", 0, 10)], genome)
    with pytest.raises(GenomeError, match="outside"):
        Layout.from_regions([("chr2", 600, 700)], genome)
    assert Layout.from_regions(
        [("chr1", 0, 50), ("chr2", 0, 50)], genome, chroms=["chr2"]
    ).chrom == ("chr2",)


def test_whole_genome_layout_has_short_last_bin():
    lay = Layout.from_genome({"chr1": 1_010, "chr2": 50}, ["chr2", "chr1"])
    assert lay.chrom == ("chr2", "chr1") and lay.n_bins == (2, 41)
    pieces = lay.pieces(1, 5)
    assert pieces == [("chr2", 25, 1, 0, 50), ("chr1", 0, 3, 1, 1_010)]


# ----------------------------------------------------------------------------- names


def test_harmonise_chroms_rules_and_explicit_map():
    hg19 = genome_sizes("hg19")
    assert harmonise_chroms({"1": 1, "MT": 1, "X": 1, "GL000192.1": 1}, hg19) == {
        "chr1": "1",
        "chrM": "MT",
        "chrX": "X",
    }
    ensembl = genome_sizes({"1": 10, "MT": 5})
    assert harmonise_chroms({"chr1": 10, "chrM": 5}, ensembl) == {"1": "chr1", "MT": "chrM"}
    assert harmonise_chroms({"seq1": 5}, hg19, chrom_map={"seq1": "chr2"}) == {"chr2": "seq1"}
    with pytest.raises(ChromosomeError, match="'chr1' and '1' both match"):
        harmonise_chroms({"chr1": 1, "1": 1}, hg19, path="x.bw")
    assert harmonise_chroms({"chr1": 1, "1": 1}, hg19, chrom_map={"1": None}) == {"chr1": "chr1"}
    with pytest.raises(ChromosomeError, match="not in genome"):
        harmonise_chroms({"a": 1}, hg19, chrom_map={"a": "chrQ"})


def test_check_chroms_policies_and_size_errors():
    hg19 = genome_sizes("hg19")
    file_chroms = {"chr17": 83_257_441, "chrUn_x": 100}
    with pytest.raises(ChromSizeError) as info:
        check_chroms(file_chroms, hg19, ["chr17"], path="f.bw")
    message = str(info.value)
    assert "f.bw" in message and "chr17" in message and "genome='hg38'" in message
    ok = {"chr1": 249_250_621, "chrUn_x": 100}
    assert check_chroms(ok, hg19, ["chr1", "chr2"]) == {"chr1": "chr1"}
    with pytest.raises(ChromosomeError, match=r"\['chrUn_x'\].*extra_chroms='ignore'"):
        check_chroms(ok, hg19, ["chr1"], extra_chroms="error", path="f.bw")
    with pytest.raises(ChromosomeError, match=r"no chromosome \['chr2'\]"):
        check_chroms(ok, hg19, ["chr1", "chr2"], missing_chroms="error", path="f.bw")


# ----------------------------------------------------------------------------- binning


def test_bin_means_edges_and_gaps():
    v = np.full(75, np.nan, dtype=np.float32)
    v[20:30] = 10.0  # one record across a bin edge
    v[30:31] = 4.0  # a 1-bp record
    np.testing.assert_array_equal(
        bin_means(v, 3), np.array([10.0, (5 * 10 + 4) / 6, np.nan], dtype=np.float32)
    )
    np.testing.assert_array_equal(
        bin_means(v, 3, gaps="zero"), np.array([2.0, 54 / 25, 0.0], dtype=np.float32)
    )
    short = np.full(50, np.nan, dtype=np.float32)
    short[25:35] = 5.0  # chromosome ends at base 35: the last bin has 10 bases
    assert bin_means(short, 2, n_valid=35, gaps="zero")[1] == 5.0


def test_bin_means_is_the_per_base_definition_bit_for_bit():
    """Fully covered bins (one pass), partly covered, uncovered, inf - inf and the short last
    bin all give the bits of the definition: covered bases summed in float64, then float32."""
    rng = np.random.default_rng(3)
    n = 3_000
    values = (rng.choice([-1, 1], n * 25) * 10.0 ** rng.uniform(-20, 20, n * 25)).astype("f4")
    values[rng.random(n * 25) < 0.02] = np.nan  # some bins partly covered
    values[: 25 * 50] = np.nan  # some bins not covered at all
    values[25 * 60 : 25 * 61] = [np.inf, -np.inf] + [1.0] * 23  # inf - inf is NaN
    before = values.copy()
    for gaps in ("missing", "zero"):
        got = bin_means(values, n, n_valid=n * 25 - 7, gaps=gaps)
        want = np.empty(n, dtype=np.float32)
        for k in range(n):  # the definition: float64, base by base, covered bases only
            total, count = 0.0, 0
            for x in values[25 * k : 25 * k + 25].tolist():
                if x == x:
                    total, count = total + x, count + 1
            if gaps == "zero":
                count = 25 if k < n - 1 else 25 - 7
            want[k] = np.float32(total / count) if count else np.nan
        assert got.tobytes() == want.tobytes(), gaps
    assert values.tobytes() == before.tobytes()  # the input is left alone


@st.composite
def records(draw):
    size = draw(st.integers(30, 400))
    cuts = sorted(set(draw(st.lists(st.integers(0, size), min_size=2, max_size=30))))
    out = []
    for a, b in zip(cuts[:-1], cuts[1:], strict=False):
        if draw(st.booleans()):  # leave gaps
            out.append(("chr1", a, b, draw(st.floats(-50, 50, width=32))))
    return size, out


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(records(), st.sampled_from(["missing", "zero"]))
def test_read_bigwig_matches_naive_binning(tmp_path, reader, case, gaps):
    size, recs = case
    path = write_bw(tmp_path / "r.bw", {"chr1": size}, recs)
    got = read_bigwig(path, genome={"chr1": size}, gaps=gaps, chunks=3).values
    base = np.full(-(-size // 25) * 25, np.nan)  # naive: from the records themselves
    for _, a, b, v in recs:
        base[a:b] = np.float32(v)
    want = []
    for k in range(0, len(base), 25):
        w = base[k : k + 25]
        inside = min(25, size - k)
        if gaps == "zero":
            want.append(np.nansum(w) / inside)
        else:
            want.append(np.nanmean(w) if np.isfinite(w).any() else np.nan)
    np.testing.assert_allclose(got, np.array(want, dtype=np.float32), rtol=1e-6, atol=1e-6)
    assert np.array_equal(np.isnan(got), np.isnan(np.array(want)))


def test_bigwig_array_is_picklable_and_lazy(tmp_path):
    from conftest import raise_if_dask_computes

    path = write_bw(tmp_path / "a.bw", {"chr1": 1_000}, [("chr1", 0, 100, 2.0)])
    with raise_if_dask_computes():
        trk = read_bigwig(path, genome={"chr1": 1_000}, chunks=10)
        window = trk.isel(position=slice(2, 6)) * 2
    assert isinstance(trk.data, dask.array.Array) and trk.data.chunks[0][0] == 10
    np.testing.assert_array_equal(window.values, [4, 4, np.nan, np.nan])
    arr = BigWigArray(path, Layout.from_genome({"chr1": 1_000}), {"chr1": "chr1"})
    clone = pickle.loads(pickle.dumps(arr))
    np.testing.assert_array_equal(clone[0:6], [2, 2, 2, 2, np.nan, np.nan])
    np.testing.assert_array_equal(clone[np.array([5, 1])], [np.nan, 2])
    same = read_bigwig(path, genome={"chr1": 1_000}, chunks=10)
    assert same.data.name == trk.data.name  # tokenized by path, mtime, size, layout


# ----------------------------------------------------------------------------- real files


@pytest.mark.parametrize("name", sorted(REAL))
def test_real_bigwigs_match_independent_binning(shared_data, reader, name):
    genome, chrom, lo, hi = REAL[name]
    path = shared_data / "bigwig" / name
    trk = read_bigwig(path, genome=genome, regions=[(chrom, lo, hi)], region_rule="overlap")
    bw = pyBigWig.open(str(path))
    file_chrom = chrom if chrom in bw.chroms() else chrom[3:]
    bw.close()
    want = independent_bins(path, file_chrom, lo, hi)
    got = trk.values
    assert trk.start.values[0] == lo and len(got) == (hi - lo) // 25
    assert np.array_equal(np.isnan(got), np.isnan(want))
    np.testing.assert_allclose(got, want, rtol=1e-6)
    assert np.isfinite(got).sum() > 100  # the window holds real data


@needs_pybigtools
@pytest.mark.parametrize("gaps", ["missing", "zero"])
def test_readers_agree_bit_for_bit(shared_data, tmp_path, gaps):
    """pybigtools and pyBigWig give the same float32 bits on every real file (whole
    chromosomes, with their short last bins) and on a file without any record."""
    empty = write_bw(tmp_path / "empty.bw", {"chr1": 1_013}, [])
    cases = [(shared_data / "bigwig" / name, genome) for name, (genome, *_) in REAL.items()]
    for path, genome in [*cases, (empty, {"chr1": 1_013})]:
        sizes = genome_sizes(genome)
        bw = pyBigWig.open(str(path))
        chroms = check_chroms(bw.chroms(), sizes, sizes.sizes)  # every chromosome it has
        bw.close()
        array = BigWigArray(path, Layout.from_genome(sizes, list(chroms)), chroms, gaps)
        n = array.shape[0]
        with array.open("pyBigWig") as slow, array.open("pybigtools") as fast:
            for lo in range(0, n, 2**21):
                want = slow.read(lo, min(lo + 2**21, n))
                assert fast.read(lo, min(lo + 2**21, n)).tobytes() == want.tobytes(), path
    assert np.isnan(
        BigWigArray(empty, Layout.from_genome({"chr1": 1_013}), {"chr1": "chr1"})[:]
    ).all()


def test_reader_choice(monkeypatch):
    monkeypatch.setenv("AVOCADO_XR_BIGWIG_READER", "pyBigWig")
    assert reader_name() == "pyBigWig"
    monkeypatch.setenv("AVOCADO_XR_BIGWIG_READER", "libBigWig")
    with pytest.raises(ConfigError, match="'libBigWig' is not a bigWig reader"):
        reader_name()
    monkeypatch.setitem(__import__("sys").modules, "pybigtools", None)  # not installed
    monkeypatch.setenv("AVOCADO_XR_BIGWIG_READER", "auto")
    assert reader_name() == "pyBigWig"
    monkeypatch.setenv("AVOCADO_XR_BIGWIG_READER", "pybigtools")
    with pytest.raises(ConfigError, match=r"avocado-xr\[fast\]"):
        reader_name()
    with pytest.raises(ConfigError, match="reader must be one of"):
        BigWigArray("a.bw", Layout.from_genome({"chr1": 100}), {}).open("bigtools")


def test_file_sharing_no_chromosome_is_refused():
    hg19 = genome_sizes("hg19")
    with pytest.raises(ChromSizeError) as info:  # chr17 of hg38, read on chr1 of hg19
        check_chroms({"chr17": 83_257_441}, hg19, ["chr1"], path="f.bw")
    message = str(info.value)
    assert message.startswith("f.bw shares no chromosome") and "genome 'hg19'" in message
    assert "pass genome='hg38'" in message
    with pytest.raises(ChromosomeError, match="2L.*pass genome='dm3'"):  # dm3, no chrX read
        check_chroms({"X": 22_422_827, "2L": 23_011_544}, hg19, ["chr6", "chr22"], path="f.bw")
    with pytest.raises(ChromosomeError, match="all-empty track.*regions= or chroms="):
        check_chroms({"chr22": 51_304_566}, hg19, ["chr6"], path="f.bw")
    assert check_chroms({"chr22": 51_304_566}, hg19, ["chr21", "chr22"]) == {"chr22": "chr22"}


def test_real_partial_coverage_reads_and_other_assemblies_fail(shared_data):
    from conftest import raise_if_dask_computes

    bw = shared_data / "bigwig"
    chr22 = bw / "sevenC_GM12878_Stat1.chr22_1-30000000.hg19.bigWig"
    hg19 = genome_sizes("hg19")
    everything = Layout.from_genome(hg19)  # all of hg19, from a chr22-only file
    assert file_chroms(chr22, hg19, everything) == {"chr22": "chr22"}
    at = int(everything.offsets[everything.chrom.index("chr22")]) + 16_000_000 // 25
    got = BigWigArray(chr22, everything, {"chr22": "chr22"})[at : at + 4_000]
    np.testing.assert_allclose(got, independent_bins(chr22, "chr22", 16_000_000, 16_100_000))
    with raise_if_dask_computes():
        two = read_bigwig(chr22, genome="hg19", chroms=["chr21", "chr22"])  # lazy, no error
    assert np.isnan(two[:1_000].values).all()  # chr21: uncovered
    pilot_bed = ax.datasets.pilot_regions()[["chrom", "start", "end"]]
    fly = bw / "pyGenomeTracks_bigwig3_X_2.5e6_3.5e6.dm3.bw"
    with pytest.raises(ChromSizeError, match="dm3.bw shares no chromosome.*genome='dm3'"):
        read_bigwig(fly, genome="hg19", regions=pilot_bed)
    with pytest.raises(ChromSizeError, match="chr17.bigWig shares no.*genome='hg38'"):
        read_bigwig(bw / "bigtools_valid.chr17.bigWig", genome="hg19", regions=pilot_bed)


def test_real_dm3_file_without_chr_prefix_and_second_chrom(shared_data):
    path = shared_data / "bigwig" / "pyGenomeTracks_bigwig3_X_2.5e6_3.5e6.dm3.bw"
    trk = read_bigwig(path, genome="dm3", regions=[("chr2L", 0, 100)], region_rule="overlap")
    np.testing.assert_array_equal(trk.values, [1.0, 1.0, np.nan, np.nan])
    with pytest.raises(ChromSizeError, match="'X' is 22,422,827 bp"):
        read_bigwig(path, genome="hg19", chroms=["chrX"])


def test_real_file_wrong_assembly_names_the_fix(shared_data):
    path = shared_data / "bigwig" / "bigtools_valid.chr17.bigWig"
    with pytest.raises(ChromSizeError, match="genome='hg38'"):
        read_bigwig(path, genome="hg19", chroms=["chr17"])


@pytest.mark.parametrize("fraction", [0.2, 0.9, 0.999])
def test_truncated_file_is_detected(shared_data, tmp_path, fraction):
    src = shared_data / "bigwig" / "sevenC_GM12878_Stat1.chr22_1-30000000.hg19.bigWig"
    data = src.read_bytes()
    bad = tmp_path / "cut.bw"
    bad.write_bytes(data[: int(len(data) * fraction)])
    with pytest.raises(BigWigReadError, match="cut.bw.*(truncated|cannot open)"):
        check_bigwig_file(bad)
    check_bigwig_file(src)  # the whole file passes


def test_not_a_bigwig_and_missing_file(tmp_path):
    text = tmp_path / "x.bedGraph"
    text.write_text("chr1\t0\t100\t1.0\n" * 10)
    with pytest.raises(BigWigReadError, match="x.bedGraph: not a bigWig"):
        check_bigwig_file(text)
    with pytest.raises(BigWigReadError, match="no such file"):
        check_bigwig_file(tmp_path / "nope.bw")
    with pytest.raises(AvocadoXrError):
        read_bigwig(text, genome="hg19")


def test_empty_chromosome_reads_as_uncovered(tmp_path):
    path = write_bw(tmp_path / "e.bw", {"chr1": 100, "chr2": 100}, [("chr1", 0, 25, 3.0)])
    trk = read_bigwig(path, genome={"chr1": 100, "chr2": 100})
    assert trk.values[0] == 3.0 and np.isnan(trk.values[1:]).all()


def test_copied_file_reads_the_same(tmp_path, shared_data):
    src = shared_data / "bigwig" / "trackplot_H1_H3K4me3_hg19_POU5F1.bw"
    dst = tmp_path / "copy.bw"
    shutil.copy(src, dst)
    kw = dict(genome="hg19", regions=[("chr6", 31_125_000, 31_146_000)])
    np.testing.assert_array_equal(read_bigwig(src, **kw).values, read_bigwig(dst, **kw).values)
