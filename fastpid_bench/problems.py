"""Benchmark problems: joint histograms built from samples, as the paper does.

Every generator takes an explicit ``seed`` and derives its own random stream
from ``(seed, problem id)``, so a problem's histogram depends only on the seed
and its own parameters (not on which other problems ran before it).
"""
from __future__ import annotations

import hashlib
import zlib
from dataclasses import dataclass, field

import numpy as np

from fastpid import distributions, joint_histogram

__all__ = [
    "Problem",
    "GATES",
    "DEFAULT_COEFFS",
    "gate_problem",
    "gaussian_problem",
    "gaussian_samples",
    "random_problem",
]

#: gate name -> (function of two bits giving the label, name in fastpid.distributions.KNOWN)
GATES = {
    "xor": (lambda a, b: a ^ b, "xor"),
    "and": (lambda a, b: a & b, "and_"),
    "or": (lambda a, b: a | b, "or_"),
    "rdn": (None, "rdn"),  # X1 = X2 = Y
    "unq": (lambda a, b: a, "unq"),
    "copy": (lambda a, b: 2 * a + b, "copy"),
}

#: (c1, c2, u1, u2) of Y = c1 X1 + c2 X2 + u1 X1^2 + u2 X2^2 + noise
DEFAULT_COEFFS = (1.0, 0.5, 0.4, 0.2)


@dataclass
class Problem:
    """One joint histogram to decompose, with where it came from."""

    name: str
    counts: np.ndarray
    params: dict = field(default_factory=dict)
    truth: dict | None = None  # theoretical atoms (bits) where they are known

    @property
    def shape(self) -> tuple:
        return tuple(int(s) for s in self.counts.shape[-3:])

    @property
    def size(self) -> int:
        """n1 * n2 * ny (cells of one histogram)."""
        n1, n2, ny = self.shape
        return n1 * n2 * ny

    @property
    def batch(self) -> int:
        return int(np.prod(self.counts.shape[:-3], dtype=np.int64)) if self.counts.ndim > 3 else 1

    def digest(self) -> str:
        """SHA-256 of the counts (float64, C order): equal digests = equal histograms."""
        arr = np.ascontiguousarray(self.counts, dtype=np.float64)
        return hashlib.sha256(arr.tobytes() + str(arr.shape).encode()).hexdigest()


def _rng(seed: int, *key) -> np.random.Generator:
    """A random stream that depends only on ``seed`` and the problem's key."""
    tag = zlib.crc32(repr(key).encode())
    return np.random.default_rng([int(seed), tag])


def gate_problem(gate: str, *, samples: int, seed: int) -> Problem:
    """Histogram of ``samples`` draws of two uniform bits and the gate's label."""
    if gate not in GATES:
        raise ValueError(f"unknown gate {gate!r}; choose from {sorted(GATES)}")
    func, known = GATES[gate]
    rng = _rng(seed, "gate", gate, samples)
    x1 = rng.integers(0, 2, size=samples)
    if func is None:  # rdn: one bit copied three times
        x2 = x1.copy()
        y = x1.copy()
    else:
        x2 = rng.integers(0, 2, size=samples)
        y = func(x1, x2)
    counts, _ = joint_histogram(x1, x2, y)
    return Problem(
        name=gate,
        counts=counts,
        params={"gate": gate, "samples": samples},
        truth=dict(distributions.KNOWN[known]),
    )


def _quantile_codes(v: np.ndarray, k: int) -> np.ndarray:
    """Equal-mass bins: codes 0..k-1."""
    edges = np.quantile(v, np.linspace(0.0, 1.0, k + 1)[1:-1])
    return np.searchsorted(edges, v, side="right")


def gaussian_samples(samples: int, *, seed: int, coeffs=DEFAULT_COEFFS, noise: float = 0.5, key=()):
    """X1, X2 ~ N(0, 1) independent; Y = c1 X1 + c2 X2 + u1 X1^2 + u2 X2^2 + noise * N(0, 1)."""
    c1, c2, u1, u2 = coeffs
    rng = _rng(seed, "gaussian", samples, tuple(coeffs), noise, *key)
    x1 = rng.standard_normal(samples)
    x2 = rng.standard_normal(samples)
    y = c1 * x1 + c2 * x2 + u1 * x1**2 + u2 * x2**2 + noise * rng.standard_normal(samples)
    return x1, x2, y


def gaussian_problem(dx: int, dy: int, *, samples: int, seed: int, coeffs=DEFAULT_COEFFS,
                     noise: float = 0.5) -> Problem:
    """The paper's synthetic Gaussian task, discretized into dx x dx x dy equal-mass bins.

    The samples depend on the seed (not on dx, dy), so the tasks at different
    bin counts discretize the same data, as in Table VII.
    """
    x1, x2, y = gaussian_samples(samples, seed=seed, coeffs=coeffs, noise=noise)
    counts, _ = joint_histogram(_quantile_codes(x1, dx), _quantile_codes(x2, dx), _quantile_codes(y, dy))
    return Problem(
        name=f"Dx={dx},Dy={dy}",
        counts=counts,
        params={"dx": dx, "dy": dy, "samples": samples, "coeffs": list(coeffs), "noise": noise,
                "binning": "quantile"},
    )


def random_problem(n1: int, n2: int, ny: int, *, seed: int, batch: int | None = None,
                   samples: int = 20_000) -> Problem:
    """Gaussian-task histograms of a given shape for the scaling runs.

    ``batch`` histograms (or one) of ``samples`` draws each, discretized into
    n1 x n2 x ny equal-mass bins (the source bins use n1 and n2 separately).
    """
    out = []
    for b in range(batch or 1):
        x1, x2, y = gaussian_samples(samples, seed=seed, key=("scaling", n1, n2, ny, b))
        flat = np.ravel_multi_index(
            (_quantile_codes(x1, n1), _quantile_codes(x2, n2), _quantile_codes(y, ny)), (n1, n2, ny)
        )
        out.append(np.bincount(flat, minlength=n1 * n2 * ny).astype(np.float64).reshape(n1, n2, ny))
    counts = np.stack(out) if batch else out[0]
    return Problem(
        name=f"{n1}x{n2}x{ny}" + (f" x{batch}" if batch else ""),
        counts=counts,
        params={"n1": n1, "n2": n2, "ny": ny, "batch": batch or 1, "samples": samples},
    )
