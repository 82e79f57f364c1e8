"""Does the average smoothed along the genome make the ensemble safer? On dumped fits.

The tracks the ensemble loses to the average baseline (H3K4me3 in E003, E017 and E117, on
every replicate; ``study_robustness.py``) are tracks where no input beats the average by
much. The average itself is a mean of three or four noisy tracks at 25 bp, and a peak spans
many bins: its moving mean over 9 positions (225 bp) has a lower squared error than the
average on every one of the 25 pilot tracks. This study adds the baselines ``average-w9``
and ``average-w33`` (:func:`avocado_xr.evaluation.baselines.impute_average` with
``window``; they learn nothing, so they are computed here from each fold's training
tracks, as ``fit_ensemble`` computes a baseline's) to the inputs dumped by
``study_combiner.py dump`` and scores, on each replicate:

- the default of the third change, before them (anchor 0.1 towards the average);
- the default with them, whose anchor pulls towards ``average-w9``
  (:func:`avocado_xr.evaluation.stacking.anchor_reference`), at anchors 0.1 (the fourth
  change's default), 0.3 (the package's since the fifth replicate) and 1.0;
- ``average-w9`` alone;
- the default with the raw Avocado inputs shifted to the average's mean level on each track
  (:meth:`study_robustness.Variant.match_levels`; for the record, 2026-11-23).

Nothing here reads a held-out track to fit; the replicates are the judge.

Usage::

    python benchmarks/study_smoothing.py /tmp/combiner /tmp/combiner1 /tmp/combiner2
"""

from __future__ import annotations

import sys
from pathlib import Path

from study_combiner import EXTRA, SMOOTHED
from study_robustness import THIRD, Variant, main, raw_avocado


def rows(path: Path):
    """(label, held-out predictions, study) of every variant on one replicate."""
    study = Variant(path, extra=EXTRA + SMOOTHED)  # a Study that can also match levels
    every = list(range(len(study.names)))
    before = [i for i, name in enumerate(study.names) if name not in SMOOTHED]
    default = study.anchor  # the package's
    yield "average baseline (the reference)", study.alone("average"), study
    study.anchor = THIRD
    yield (
        f"default of the third change (no smoothed averages, anchor {THIRD})",
        study.predict(before),
        study,
    )
    for anchor in (THIRD, 0.3, 1.0):
        study.anchor = anchor
        label = f"+ average-w9, average-w33, anchor {anchor} towards average-w9"
        yield label + (" (default)" if anchor == default else ""), study.predict(every), study
    yield "average-w9 alone", study.alone("average-w9"), study
    study.anchor = default
    study.match_levels(raw_avocado(study.names))  # last: it changes the study's inputs
    label = f"default, level-matched {', '.join(raw_avocado(study.names))}"
    yield label, study.predict(every), study


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:], rows=rows))
