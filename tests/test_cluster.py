"""Clustering codes by person: the three methods, automatic eps, scores against identities."""

from __future__ import annotations

import numpy as np
import pytest

from facespace.people.clustering import (
    cluster,
    cluster_scores,
    estimate_eps,
    k_distances,
    knee,
    pairwise_f_measure,
)
from facespace.errors import FacespaceError


@pytest.fixture(scope="module")
def blobs():
    """Four tight groups of 25 codes in different directions plus 6 far-off stragglers."""
    rng = np.random.default_rng(0)
    centres = np.eye(4, 16) * 5
    codes = [c + rng.normal(0, 0.4, (25, 16)) for c in centres]
    stray = rng.normal(0, 1, (6, 16))
    stray[:, 4:10] += 8 * np.eye(6)  # each in its own direction, far from every group
    truth = np.r_[np.repeat(np.arange(4), 25), 10 + np.arange(6)]
    return np.concatenate(codes + [stray]).astype(np.float32), truth


@pytest.mark.parametrize("method", ["dbscan", "hdbscan", "agglomerative"])
def test_methods_recover_the_groups(blobs, method):
    codes, truth = blobs
    labels = cluster(codes, method)
    assert labels.shape == (len(codes),) and labels.dtype == np.int64
    groups = labels[:100]
    # each true group maps to one cluster and different groups to different clusters
    majority = [np.bincount(groups[i * 25 : (i + 1) * 25][groups[i * 25 : (i + 1) * 25] >= 0]).argmax() for i in range(4)]
    assert len(set(majority)) == 4
    assert cluster_scores(truth, labels)["ari"] > 0.85
    assert (labels[100:] == -1).all()  # stragglers are noise


def test_agglomerative_with_a_number_of_clusters(blobs):
    codes, truth = blobs
    labels = cluster(codes[:100], "agglomerative", n_clusters=4, min_cluster_size=1)
    assert cluster_scores(truth[:100], labels)["ari"] == pytest.approx(1.0)
    assert sorted(np.bincount(labels)) == [25, 25, 25, 25]


def test_estimated_eps_lies_between_within_and_between_group_distances(blobs):
    codes, _ = blobs
    eps = estimate_eps(codes, 5)
    kd = k_distances(codes[:100], 5)  # within groups
    z = codes[:100] / np.linalg.norm(codes[:100], axis=1, keepdims=True)
    group = np.repeat(np.arange(4), 25)
    between = (1 - z @ z.T)[group[:, None] != group[None, :]]
    assert np.quantile(kd, 0.9) <= eps < between.min()


def test_k_distances_known_answer():
    codes = np.array([[0.0], [1.0], [3.0], [6.0]])
    np.testing.assert_allclose(k_distances(codes, 1, metric="l2"), [1, 1, 2, 3])


def test_knee_of_a_hockey_stick():
    y = np.r_[np.linspace(0, 1, 90), np.linspace(1, 20, 10)]
    assert knee(y) in (88, 89, 90)


def test_pairwise_f_measure_known_answer():
    truth = ["a", "a", "a", "b", "b"]
    # predicted: {0,1} together, {2,3} together, 4 noise. true pairs: 3 + 1 = 4; predicted pairs: 2;
    # correct pairs: (0,1) only -> precision 1/2, recall 1/4, F = 1/3
    assert pairwise_f_measure(truth, [0, 0, 1, 1, -1]) == pytest.approx(1 / 3)
    assert pairwise_f_measure(truth, [0, 0, 0, 1, 1]) == pytest.approx(1.0)
    s = cluster_scores(truth, [0, 0, 0, -1, -1])
    assert s["noise_fraction"] == pytest.approx(0.4) and s["clusters"] == 1


def test_clusters_are_numbered_by_size():
    codes = np.r_[np.zeros((3, 2)) + [10, 0], np.zeros((6, 2)) + [0, 10]] + np.arange(9)[:, None] * 1e-3
    labels = cluster(codes, "dbscan", eps=0.01, min_samples=2)
    assert (labels[3:] == 0).all() and (labels[:3] == 1).all()


def test_bad_input():
    with pytest.raises(FacespaceError, match="unknown clustering method 'kmeans'"):
        cluster(np.ones((5, 2)), "kmeans")
    with pytest.raises(FacespaceError, match="NaN"):
        cluster(np.array([[1.0, np.nan], [1.0, 2.0]]))
    with pytest.raises(FacespaceError, match="non-empty"):
        cluster(np.zeros((0, 3)))
    with pytest.raises(FacespaceError, match="all zeros"):
        cluster(np.zeros((4, 3)))
    with pytest.raises(FacespaceError, match="ward"):
        cluster(np.random.default_rng(0).random((6, 3)), "agglomerative", linkage="ward")


def many_people_and_strangers(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """40 people x 6 codes around unit centres in 32-d, plus 150 scattered strangers (each its own label)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(40, 32))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    people = np.concatenate([c + rng.normal(0, 0.12, (6, 32)) for c in centres])
    codes = np.concatenate([people, rng.normal(size=(150, 32))]).astype(np.float32)
    return codes, np.concatenate([np.repeat(np.arange(40), 6), 40 + np.arange(150)])


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_most_clusters_eps_finds_many_small_groups(seed):
    codes, truth = many_people_and_strangers(seed)
    labels = cluster(codes, "dbscan")  # default rule: most clusters
    assert cluster_scores(truth, labels)["ari"] > 0.9
    assert 36 <= labels.max() + 1 <= 40 and (labels[240:] == -1).mean() > 0.9  # strangers stay noise
    if seed == 2:  # no density gap for the knee here: its radius chains everyone into one cluster
        assert cluster(codes, "dbscan", eps_rule="knee").max() == 0
    with pytest.raises(FacespaceError, match="eps rule"):
        cluster(codes, "dbscan", eps_rule="elbow")


def test_knee_rule_stays_available_for_round_blobs():
    rng = np.random.default_rng(0)  # three round blobs of 20: the smallest stable radius splits one
    codes = np.concatenate([c + rng.normal(0, 0.3, (20, 8)) for c in np.eye(3, 8) * 5]).astype(np.float32)
    labels = cluster(codes, "dbscan", eps_rule="knee")
    assert cluster_scores(np.repeat(np.arange(3), 20), labels)["ari"] > 0.9
    assert estimate_eps(codes, 5) == estimate_eps(codes, 5, rule="knee")  # estimate_eps's default is the knee
