"""Keep the LAPACK that jaxlib calls single-threaded.

jaxlib runs Cholesky and triangular solves through SciPy's bundled OpenBLAS.
GP matrices are small (n_max rows), where OpenBLAS threads only add
synchronization; on a busy machine (a population training beside the search,
other processes) they thrash, making a 110x110 solve 50x slower than on one
thread (measured on a 2-core CPU: 51 ms vs 0.2 ms). Set the environment
variable HYPEROPTAX_LAPACK_THREADS to change the count (0 leaves it alone).
"""

from __future__ import annotations

import os


def limit_lapack_threads() -> None:
    n = int(os.environ.get("HYPEROPTAX_LAPACK_THREADS", "1"))
    if n <= 0:
        return
    try:
        import scipy.linalg.cython_lapack  # noqa: F401  (loads the OpenBLAS jaxlib uses)
        from threadpoolctl import ThreadpoolController
    except ImportError:
        return
    for lib in ThreadpoolController().lib_controllers:
        # Only SciPy's copy: NumPy's BLAS (the user's own matmuls) is left alone.
        if "scipy" in os.path.basename(os.path.dirname(lib.filepath)) and lib.user_api == "blas":
            lib.set_num_threads(n)
