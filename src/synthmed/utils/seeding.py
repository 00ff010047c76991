"""Seeds derived from seeds: every random draw traces back to one user-given integer."""

from __future__ import annotations

import numpy as np


def derive_seed(*keys: int) -> int:
    """A 63-bit seed mixed from integer keys with NumPy's ``SeedSequence`` hashing.

    The same keys always give the same seed, on every platform; nearby keys give unrelated
    seeds, so ``derive_seed(base, i)`` seeds image ``i`` independently of its neighbours.
    """
    state = np.random.SeedSequence([int(k) & 0xFFFFFFFFFFFFFFFF for k in keys]).generate_state(1, dtype=np.uint64)
    return int(state[0] >> np.uint64(1))
