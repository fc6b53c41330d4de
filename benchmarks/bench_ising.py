"""Ising sampler throughput against two references timed in the same run, and the wall time
to generate the full 16 x 10,000 data set (L = 40) with measured decorrelation.

References: a vectorised NumPy checkerboard Metropolis, and a plain numba checkerboard loop
drawing one ``np.random.random()`` per spin. All three update 256 independent 40 x 40
lattices at T = Tc on every core numba is given. Writes build/bench/ising.json.
"""

import math
import os
import sys
import time

import numba
import numpy as np

from helpers.data import ising
from helpers.infra.config import build_dir
from helpers.infra.files import write_json_atomic

L, N_LATTICES, T = 40, 256, ising.TC
FLIPS_PER_SWEEP = N_LATTICES * L * L


def numpy_checkerboard(spins, beta, rng, n_sweeps):
    """The textbook vectorised update: neighbour sums by np.roll, one colour at a time."""
    i, j = np.indices((L, L))
    colours = [(i + j) % 2 == c for c in (0, 1)]
    acceptance = np.exp(-beta * 2 * np.arange(-4, 5))  # indexed by s * h + 4
    for _ in range(n_sweeps):
        for mask in colours:
            h = (np.roll(spins, 1, 1) + np.roll(spins, -1, 1)
                 + np.roll(spins, 1, 2) + np.roll(spins, -1, 2))
            accept = (rng.random(spins.shape) < acceptance[spins * h + 4]) & mask
            spins[accept] *= -1


@numba.njit(parallel=True)
def plain_numba(spins, beta, n_sweeps, seed):
    """Checkerboard Metropolis, one np.random.random() per spin, chains over the cores."""
    n, size = spins.shape[0], spins.shape[1]
    acceptance = np.exp(-beta * 2 * np.arange(-4, 5))
    for c in numba.prange(n):
        np.random.seed(seed + c)  # noqa: NPY002 (numba supports only the legacy API)
        s = spins[c]
        for _ in range(n_sweeps):
            for colour in range(2):
                for a in range(size):
                    for b in range((a + colour) % 2, size, 2):
                        h = (s[(a + 1) % size, b] + s[(a - 1) % size, b]
                             + s[a, (b + 1) % size] + s[a, (b - 1) % size])
                        if np.random.random() < acceptance[s[a, b] * h + 4]:  # noqa: NPY002
                            s[a, b] = -s[a, b]


def rate(run, n_sweeps, repeats=3):
    """Best of ``repeats`` timings, in spin-flip attempts per nanosecond."""
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        run(n_sweeps)
        best = min(best, time.perf_counter() - start)
    return FLIPS_PER_SWEEP * n_sweeps / best / 1e9


def main():
    rng = np.random.default_rng(0)
    start = rng.choice(np.array([-1, 1], dtype=np.int8), size=(N_LATTICES, L, L))

    chains = ising.IsingChains(L, T, N_LATTICES, "metropolis", seed=0)
    chains.spins[:] = start
    chains.sweeps(2)  # compile
    ours = rate(chains.sweeps, 400)

    np_spins = start.copy()
    reference = rate(lambda n: numpy_checkerboard(np_spins, 1 / T, rng, n), 10)

    nb_spins = start.copy()
    plain_numba(nb_spins, 1 / T, 1, 0)  # compile
    plain = rate(lambda n: plain_numba(nb_spins, 1 / T, n, 1), 100)

    began = time.perf_counter()
    ising.generate_ising(10_000, L=L, seed=0, progress=False)
    dataset_seconds = time.perf_counter() - began

    result = {
        "flips_per_ns": round(ours, 4),
        "numpy_flips_per_ns": round(reference, 4),
        "plain_numba_flips_per_ns": round(plain, 4),
        "ratio_vs_numpy": round(ours / reference, 2),
        "ratio_vs_plain_numba": round(ours / plain, 2),
        "dataset_seconds": round(dataset_seconds, 1),
        "threads": numba.get_num_threads(),
        "cpu_count": os.cpu_count(),
    }
    print(f"Ising L={L}, {N_LATTICES} lattices, T=Tc, {result['threads']} threads")
    print(f"  this sampler       {ours:7.3f} flips/ns")
    print(f"  NumPy checkerboard {reference:7.3f} flips/ns   ratio {result['ratio_vs_numpy']}x")
    print(f"  plain numba loop   {plain:7.3f} flips/ns   ratio {result['ratio_vs_plain_numba']}x")
    print(f"  full data set (16 x 10,000, decorrelated): {dataset_seconds:.1f} s")
    path = build_dir("bench") / "ising.json"
    write_json_atomic(path, result)
    print(f"  written to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
