"""Coarse bins never straddle chromosomes or gaps; layouts round-trip and locate bins."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from avocado_xr.bins import parse_region, scale_index, segment_ids
from avocado_xr.exceptions import RegionError
from avocado_xr.genome import GenomeLayout


@st.composite
def layouts(draw):
    """Random positions: several chromosomes, each a few segments separated by gaps."""
    chrom, start = [], []
    for c in range(draw(st.integers(1, 3))):
        pos = draw(st.integers(0, 400)) * 25
        for _ in range(draw(st.integers(1, 3))):
            n = draw(st.integers(1, 60))
            chrom += [f"chr{c + 1}"] * n
            start += list(range(pos, pos + 25 * n, 25))
            pos += 25 * n + draw(st.integers(1, 40)) * 25  # a gap
    return np.array(chrom), np.array(start)


@settings(max_examples=60, deadline=None)
@given(layouts(), st.sampled_from([250, 5000, 100]))
def test_coarse_bins_stay_within_one_segment_and_window(coords, scale):
    chrom, start = coords
    index, bin_chrom, bin_start = scale_index(chrom, start, scale)
    segment = segment_ids(chrom, start)
    assert index[0] == 0 and np.all(np.diff(index) >= 0) and np.all(np.diff(index) <= 1)
    for k in np.unique(index):
        members = index == k
        assert len(set(segment[members])) == 1  # never straddles a chromosome or a gap
        assert len(set(start[members] // scale)) == 1  # genome-aligned window
        assert bin_chrom[k] == chrom[members][0]
        assert bin_start[k] == start[members][0] // scale * scale


@settings(max_examples=40, deadline=None)
@given(layouts())
def test_layout_round_trips_and_locates(coords):
    chrom, start = coords
    layout = GenomeLayout.from_coords(chrom, start)
    again = GenomeLayout.from_dict(layout.to_dict())
    assert again == layout
    c, s = again.coords()
    np.testing.assert_array_equal(c.astype(str), chrom)
    np.testing.assert_array_equal(s, start)
    order = np.random.default_rng(0).permutation(len(start))
    np.testing.assert_array_equal(layout.locate(chrom[order], start[order]), order)


def test_locate_rejects_unknown_bins():
    layout = GenomeLayout.from_coords(np.array(["chr1"] * 4), np.arange(4) * 25)
    with pytest.raises(RegionError, match="chr1:100 is not among the model's positions"):
        layout.locate(np.array(["chr1"]), np.array([100]))
    with pytest.raises(RegionError, match="chr2:0"):
        layout.locate(np.array(["chr2"]), np.array([0]))
    with pytest.raises(RegionError, match="25-bp boundary"):
        GenomeLayout.from_coords(np.array(["chr1"]), np.array([10]))


@pytest.mark.parametrize(
    "text, expected",
    [
        ("chr20:1,000,000-2,000,000", ("chr20", 1_000_000, 2_000_000)),
        ("chrX:5-10", ("chrX", 5, 10)),
        (" 7 : 1_000 - 2_000 ", ("7", 1000, 2000)),
    ],
)
def test_parse_region(text, expected):
    assert parse_region(text) == expected


@given(layouts(), st.sampled_from([250, 5000, 100]))
def test_segment_arithmetic_matches_the_coordinate_pass(coords, scale):
    """scale_index_at / n_scale_bins (O(segments)) agree with scale_index (O(positions))."""
    chrom, start = coords
    layout = GenomeLayout.from_coords(chrom, start)
    index = layout.scale_index(scale)[0]
    np.testing.assert_array_equal(layout.scale_index_at(scale, np.arange(len(start))), index)
    assert layout.n_scale_bins(scale) == index.max() + 1
    lo, hi = len(start) // 3, len(start) // 3 + max(1, len(start) // 2)
    sub = layout.subset(lo, min(hi, len(start)))
    sub_chrom, sub_start = sub.coords()
    np.testing.assert_array_equal(sub_start, start[lo : lo + sub.n_positions])
    assert list(sub_chrom) == list(chrom[lo : lo + sub.n_positions])
