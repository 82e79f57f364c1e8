"""Training inside Dask workers: glibc thresholds pinned by the environment must not make
every large temporary page-fault anew (counted in minor faults, not timed)."""

import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc only")

SCRIPT = textwrap.dedent(
    """
    import resource
    import numpy as np
    from avocado_xr._compat import _glibc, reuse_freed_memory

    def faults(n=50):
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        for _ in range(n):
            np.ones(2**20)  # 8 MiB, touched, freed
        return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before

    assert _glibc() is not None
    outside = faults()
    with reuse_freed_memory():
        faults(2)  # first use grows the heap once
        inside = faults()
    after = faults()
    with reuse_freed_memory():
        with reuse_freed_memory():  # another trainer in the same process ends first
            pass
        faults(2)
        nested = faults()
    print(outside, inside, after, nested)
    """
)


def _run(env):
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, check=True
    )
    return [int(v) for v in out.stdout.split()]


def test_pinned_thresholds_are_lifted_while_training_and_restored():
    import os

    env = {**os.environ, "MALLOC_TRIM_THRESHOLD_": "65536"}  # what Dask workers run with
    outside, inside, after, nested = _run(env)
    # 50 fresh 8 MiB mappings fault in every time (~500 faults each here, with fault-around);
    # reused memory faults almost none
    assert outside > 10_000
    assert inside < outside / 20
    assert after > 10_000  # the worker's thresholds are back: memory is returned to the OS
    assert nested < outside / 20  # the last trainer out restores them, not the first


def test_no_op_where_glibc_thresholds_are_dynamic():
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    outside, inside, after, _ = _run(env)
    assert inside < 2_000 and after < 2_000  # glibc's own dynamic threshold reuses memory
