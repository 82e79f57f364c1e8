"""BED files as position masks: overlap rules, strand-aware promoters, validation, real data."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest

import avocado_xr as ax
from avocado_xr.evaluation import annotations as an


@pytest.fixture(scope="module")
def small():
    """Two chromosomes of 25-bp bins: chr1 [0, 10000), chr2 [1000, 2000)."""
    chrom = np.array(["chr1"] * 400 + ["chr2"] * 40, dtype=object)
    start = np.r_[np.arange(0, 10_000, 25), np.arange(1000, 2000, 25)]
    signal = np.zeros((1, 1, len(start)), dtype=np.float32)
    return ax.make_compendium(signal, celltypes=["C"], assays=["A"], chrom=chrom, start=start)


def _starts(mask):
    return mask.start.values[mask.values].tolist()


def test_intervals_overlap_in_bp(small):
    bed = io.StringIO("track name=x\n# comment\nchr1\t30\t80\nchr1\t100\t101\nchr2\t1990\t5000\n")
    mask = an.intervals_mask(bed, small)
    assert mask.dims == ("position",) and mask.dtype == bool
    assert _starts(mask) == [25, 50, 75, 100, 1975]
    assert mask.sizes["position"] == small.sizes["position"]


def test_promoters_are_strand_aware(small):
    genes = pd.DataFrame(
        {
            "chrom": ["chr1", "chr1"],
            "start": [2000, 5000],  # + strand: TSS at 2000
            "end": [3000, 6010],  # - strand: TSS at base 6009
            "strand": ["+", "-"],
        }
    )
    mask = an.promoters(genes, small, upstream=100)
    # +: [1900, 2000) -> 4 bins; -: [6010, 6110) -> bins 6000 .. 6100 (5 bins, TSS bin too)
    assert _starts(mask) == [1900, 1925, 1950, 1975, 6000, 6025, 6050, 6075, 6100]
    tss = an.promoters(genes, small, upstream=0, downstream=1)
    assert _starts(tss) == [2000, 6000]
    down = an.promoters(genes, small, upstream=0, downstream=50)
    # +: [2000, 2050); -: [5960, 6010)
    assert _starts(down) == [2000, 2025, 5950, 5975, 6000]


def test_default_promoter_is_2kb_upstream(small):
    genes = pd.DataFrame({"chrom": ["chr1"], "start": [5000], "end": [7000], "strand": ["+"]})
    mask = an.promoters(genes, small)
    assert _starts(mask) == list(range(3000, 5000, 25))  # 80 bins, as the challenge's prom_loc


def test_gene_bodies_and_enhancers(small):
    bed = pd.DataFrame({"chrom": ["chr2"], "start": [1010], "end": [1060]})
    assert _starts(an.gene_bodies(bed, small)) == [1000, 1025, 1050]
    assert an.enhancers(bed, small).name == "enhancer"


def test_bed_validation(small, tmp_path):
    path = tmp_path / "bad.bed"
    path.write_text("chr1\t10\n")
    with pytest.raises(an.AnnotationError, match="Line 1 .* 2 column"):
        an.intervals_mask(path, small)
    path.write_text("chr1\t10\t20\tg\t0\t.\n")
    with pytest.raises(an.AnnotationError, match=r"Strand '\.' at line 1"):
        an.promoters(path, small)
    path.write_text("chr1\t10\t20\tg\t0\n")
    with pytest.raises(an.AnnotationError, match="5 column"):
        an.promoters(path, small)
    path.write_text("chr1\t10\tx\n")
    with pytest.raises(an.AnnotationError, match="'end' .* line 1 .* not an integer"):
        an.intervals_mask(path, small)
    path.write_text("chr1\t30\t20\n")
    with pytest.raises(an.AnnotationError, match="chr1:30-20"):
        an.intervals_mask(path, small)
    with pytest.raises(an.AnnotationError, match="no column"):
        an.intervals_mask(pd.DataFrame({"chrom": ["chr1"]}), small)


def test_unknown_chromosomes(small):
    bed = pd.DataFrame({"chrom": ["1", "2"], "start": [0, 0], "end": [10, 10]})
    with pytest.raises(an.AnnotationError, match=r"None of the chromosomes .*'1', '2'"):
        an.intervals_mask(bed, small)
    bed = pd.DataFrame({"chrom": ["chr1", "chr7"], "start": [0, 0], "end": [10, 10]})
    assert _starts(an.intervals_mask(bed, small)) == [0]
    with pytest.raises(an.AnnotationError, match=r"chromosome\(s\) \['chr7'\]"):
        an.intervals_mask(bed, small, strict=True)


def test_pilot_tss_land_on_the_documented_bins(pilot, shared_data):
    # the shared BEDs list the data index of each TSS bin: the masks must hit exactly those
    genes = pd.read_csv(shared_data / "pilot_genes.hg19.bed", sep="\t")
    tss = an.promoters(an.pilot_genes_file(), pilot, upstream=0, downstream=1)
    expected = np.unique(genes.tss_data_index[genes.tss_in_region == 1])
    np.testing.assert_array_equal(np.flatnonzero(tss.values), expected)
    refseq = pd.read_csv(shared_data / "pilot_refseq_tss.hg19.bed", sep="\t")
    tss = an.promoters(shared_data / "pilot_refseq_tss.hg19.bed", pilot, upstream=0, downstream=1)
    np.testing.assert_array_equal(np.flatnonzero(tss.values), np.unique(refseq.data_index))


def test_pilot_promoters_have_high_h3k4me3(pilot):
    ann = an.pilot_annotations(pilot)
    assert set(ann.data_vars) == {"promoter", "gene_body"}
    k4me3 = pilot.signal.sel(assay="H3K4me3").mean("celltype").values
    promoter = ann.promoter.values
    assert 20_000 < promoter.sum() < 40_000
    assert k4me3[promoter].mean() > 3 * k4me3.mean()
    assert k4me3[promoter].mean() > 2.5 * k4me3[~promoter].mean()
    # H3K36me3 marks transcribed gene bodies
    k36me3 = pilot.signal.sel(assay="H3K36me3").mean("celltype").values
    body = ann.gene_body.values
    assert k36me3[body].mean() > 1.5 * k36me3[~body].mean()


def test_pilot_annotations_refuse_other_builds(sample):
    with pytest.raises(an.AnnotationError, match="hg38"):
        an.pilot_annotations(sample.assign_attrs(genome="hg38"))
