"""``fastpid.joint_histogram``: counts and label maps from discrete samples."""
from __future__ import annotations

import numpy as np
import pytest

import fastpid


def test_counts_match_a_direct_count(rng):
    x1 = rng.integers(0, 3, 500)
    x2 = rng.integers(0, 4, 500)
    y = rng.integers(0, 2, 500)
    P, (l1, l2, ly) = fastpid.joint_histogram(x1, x2, y)
    assert P.shape == (3, 4, 2) and P.sum() == 500
    expected = np.zeros((3, 4, 2))
    for a, b, c in zip(x1, x2, y):
        expected[a, b, c] += 1
    np.testing.assert_array_equal(P, expected)
    np.testing.assert_array_equal(l1, [0, 1, 2])
    np.testing.assert_array_equal(l2, [0, 1, 2, 3])
    np.testing.assert_array_equal(ly, [0, 1])


def test_arbitrary_labels_and_label_maps(rng):
    """Labels need not be 0..k-1: negative/sparse integers, floats, strings.
    The maps send each index back to the original label."""
    x1 = rng.choice([-7, 3, 100], 300)
    x2 = rng.choice([0.5, 2.25], 300)
    y = rng.choice(["cat", "dog", "emu"], 300)
    P, (l1, l2, ly) = fastpid.joint_histogram(x1, x2, y)
    assert P.shape == (len(l1), len(l2), len(ly))
    assert sorted(l1.tolist()) == l1.tolist()
    for i, a in enumerate(l1):
        for j, b in enumerate(l2):
            for k, c in enumerate(ly):
                assert P[i, j, k] == np.sum((x1 == a) & (x2 == b) & (y == c))


def test_labels_that_are_lists_and_unseen_combinations():
    P, (l1, l2, ly) = fastpid.joint_histogram([1, 1, 2], ["a", "b", "b"], [0, 0, 0])
    assert P.shape == (2, 2, 1)
    np.testing.assert_array_equal(P[:, :, 0], [[1, 1], [0, 1]])
    assert list(ly) == [0]


def test_single_sample():
    P, labels = fastpid.joint_histogram([5], [6], [7])
    assert P.shape == (1, 1, 1) and P[0, 0, 0] == 1
    assert [list(m) for m in labels] == [[5], [6], [7]]


def test_histogram_feeds_pid(rng):
    """Samples of Y = X1 xor X2 give about one bit of synergy."""
    x1 = rng.integers(0, 2, 20000)
    x2 = rng.integers(0, 2, 20000)
    P, _ = fastpid.joint_histogram(x1, x2, x1 ^ x2)
    r = fastpid.pid(P)
    assert r.converged
    assert r.S == pytest.approx(1.0, abs=1e-3)
    assert abs(r.R) < 1e-3 and abs(r.U1) < 1e-3 and abs(r.U2) < 1e-3


def test_mismatched_lengths():
    with pytest.raises(ValueError, match=r"same length.*3, 2, 3"):
        fastpid.joint_histogram([0, 1, 0], [0, 1], [1, 1, 0])
    with pytest.raises(ValueError, match=r"same length"):
        fastpid.joint_histogram([0, 1], [0, 1], [1, 1, 0])


def test_empty_input():
    with pytest.raises(ValueError, match=r"at least one sample"):
        fastpid.joint_histogram([], [], [])


@pytest.mark.parametrize("which", [0, 1, 2])
def test_non_1d_input(which):
    args = [np.arange(4), np.arange(4), np.arange(4)]
    args[which] = np.arange(4).reshape(2, 2)
    name = ["x1", "x2", "y"][which]
    with pytest.raises(ValueError, match=rf"{name} must be a 1-D array.*\(2, 2\)"):
        fastpid.joint_histogram(*args)


def test_scalar_input():
    with pytest.raises(ValueError, match=r"x1 must be a 1-D array.*\(\)"):
        fastpid.joint_histogram(3, [1], [1])


def test_nan_labels_refused():
    with pytest.raises(ValueError, match=r"x2 contains NaN"):
        fastpid.joint_histogram([0, 1], [0.0, np.nan], [1, 1])
