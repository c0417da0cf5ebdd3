"""Distractor faces for platform-scale galleries, and the extrapolation to sizes we cannot build.

The sample set has 102 people; platforms have hundreds of millions. :class:`DistractorModel` is a
multivariate Gaussian fitted to real face embeddings (mean and a Ledoit-Wolf shrunk covariance,
since 128 dimensions need more faces than the sample has). It draws embeddings of people who are
not in the sample. :func:`validate` compares the impostor distances it produces with real
impostor distances (two-sample Kolmogorov-Smirnov).

Under this model the squared distance from a probe ``p`` to a distractor is a generalised
non-central chi-square, so the chance that one distractor beats the probe's true match at
distance ``g`` is a CDF we can evaluate far into its tail (saddlepoint approximation,
Lugannani-Rice). Rank-1 in a gallery of N distractors is then ``(1 - F_p(g^2))^N`` per probe:
:func:`predicted_rank1` extrapolates to 10^9 from the same model the measured curve used.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from scipy import stats

from .index import pairwise_distances


@dataclass(frozen=True)
class DistractorModel:
    mean: np.ndarray  # (d,)
    eigvals: np.ndarray  # (d,) of the covariance
    eigvecs: np.ndarray  # (d, d), columns
    shrinkage: float
    n_fit: int

    @classmethod
    def fit(cls, embeddings: np.ndarray) -> DistractorModel:
        """Fit to (n, d) real embeddings (one or more per person)."""
        x = np.asarray(embeddings, dtype=np.float64)
        if x.ndim != 2 or len(x) < 3:
            raise ValueError(f"need at least 3 embeddings of shape (n, d), got {x.shape}")
        mean = x.mean(axis=0)
        xc = x - mean
        n, d = xc.shape
        s = xc.T @ xc / n
        mu = np.trace(s) / d
        # Ledoit-Wolf (2004) shrinkage intensity towards mu * I
        delta = np.sum((s - mu * np.eye(d)) ** 2) / d
        beta_bar = sum(np.sum((np.outer(r, r) - s) ** 2) for r in xc) / (n * n * d)
        shrink = float(min(max(beta_bar / delta, 0.0), 1.0)) if delta > 0 else 1.0
        cov = (1 - shrink) * s + shrink * mu * np.eye(d)
        vals, vecs = np.linalg.eigh(cov)
        return cls(mean=mean, eigvals=np.clip(vals, 1e-12, None), eigvecs=vecs, shrinkage=shrink, n_fit=n)

    def sample(self, n: int, seed: int = 0, chunk: int = 262_144) -> np.ndarray:
        """(n, d) float32 distractor embeddings, reproducible for a seed, made in bounded chunks."""
        out = np.empty((n, len(self.mean)), dtype=np.float32)
        for start, part in self.chunks(n, seed, chunk):
            out[start : start + len(part)] = part
        return out

    def chunks(self, n: int, seed: int = 0, chunk: int = 262_144) -> Iterator[tuple[int, np.ndarray]]:
        """:meth:`sample` in its chunks, each ``(start, (m, d) float32)``, made one at a time: the same
        distractors (same values, same order) without holding all ``n`` in memory at once."""
        rng = np.random.default_rng(seed)
        d = len(self.mean)
        # z @ scale ~ N(0, cov) with the symmetric square root V sqrt(L) V^T. Unlike V sqrt(L), it does
        # not depend on which basis LAPACK picks inside a repeated eigenvalue (Ledoit-Wolf shrinkage
        # gives one whenever there are fewer embeddings than dimensions), so the same seed draws the
        # same distractors on every processor, up to rounding.
        scale = ((self.eigvecs * np.sqrt(self.eigvals)) @ self.eigvecs.T).astype(np.float32)
        mean = self.mean.astype(np.float32)
        for start in range(0, n, chunk):
            m = min(chunk, n - start)
            z = rng.standard_normal((m, d), dtype=np.float32)
            yield start, z @ scale + mean

    def tail_cdf(self, probes: np.ndarray, radius: np.ndarray) -> np.ndarray:
        """P(||p_i - X|| <= r_i) for X drawn from the model: the chance one distractor lands within
        radius r_i of probe p_i. Saddlepoint (Lugannani-Rice) approximation; accurate far into the tail."""
        p = np.atleast_2d(np.asarray(probes, dtype=np.float64))
        r2 = np.asarray(radius, dtype=np.float64) ** 2
        lam = self.eigvals  # Q = sum_j lam_j (z_j + b_j)^2 with b = V^T (mean - p) / sqrt(lam)
        b2 = (((self.mean - p) @ self.eigvecs) ** 2) / lam
        return np.array([_lugannani_rice(lam, b2[i], r2[i]) for i in range(len(p))])


def _lugannani_rice(lam: np.ndarray, b2: np.ndarray, q: float) -> float:
    """Lower-tail CDF of sum lam_j * noncentral-chi2(1, b2_j) at q by the saddlepoint method."""
    if q <= 0:
        return 0.0
    mean = float(np.sum(lam * (1 + b2)))

    def k(t):
        a = 1 - 2 * t * lam
        return float(np.sum(-0.5 * np.log(a) + lam * b2 * t / a))

    def k1(t):
        a = 1 - 2 * t * lam
        return float(np.sum(lam / a + lam * b2 / a**2))

    def k2(t):
        a = 1 - 2 * t * lam
        return float(np.sum(2 * lam**2 / a**2 + 4 * lam**2 * b2 / a**3))

    if abs(q - mean) < 1e-9 * mean:
        return 0.5
    # solve K'(t) = q; t < 0 in the lower tail, t < 1/(2 max lam) above; bisection on log scale is robust
    hi = 1 / (2 * lam.max()) * (1 - 1e-12)
    lo_t, hi_t = (-1.0, 0.0) if q < mean else (0.0, hi)
    if q < mean:
        while k1(lo_t) > q:
            lo_t *= 2
            if lo_t < -1e12:
                return 0.0
    for _ in range(200):
        mid = (lo_t + hi_t) / 2
        if k1(mid) > q:
            hi_t = mid
        else:
            lo_t = mid
    t = (lo_t + hi_t) / 2
    w2 = 2 * (t * q - k(t))
    w = np.sign(t) * np.sqrt(max(w2, 0.0))
    u = t * np.sqrt(k2(t))
    if abs(w) < 1e-8 or abs(u) < 1e-12:
        return float(stats.norm.cdf(w))
    if w < -30:
        # Far lower tail: Phi(w) + phi(w)/w is O(phi(w)/|w|^3), negligible beside -phi(w)/u.
        return float(max(stats.norm.pdf(w) * (-1.0 / u), 0.0))
    val = stats.norm.cdf(w) + stats.norm.pdf(w) * (1 / w - 1 / u)
    return float(min(max(val, 0.0), 1.0))


def impostor_distances(probes: np.ndarray, probe_labels, gallery: np.ndarray, gallery_labels) -> np.ndarray:
    """All probe-to-gallery distances between different people (flattened)."""
    p = np.asarray(probes, np.float64)
    g = np.asarray(gallery, np.float64)
    d = pairwise_distances(p, g)
    diff = np.asarray(probe_labels)[:, None] != np.asarray(gallery_labels)[None, :]
    return d[diff]


def validate(
    model: DistractorModel, real: np.ndarray, probes: np.ndarray, n_distractors: int = 2000, seed: int = 1
) -> dict:
    """How close are the model's impostor distances to real ones? Two-sample KS on the real
    probe-to-gallery impostor distances ``real`` (:func:`impostor_distances`) and the ``probes``'
    distances to ``n_distractors`` drawn from the model, plus their summaries."""
    real = np.asarray(real, np.float64).ravel()
    fake_gallery = model.sample(n_distractors, seed=seed)
    p = np.asarray(probes, np.float64)
    synth = pairwise_distances(p, fake_gallery.astype(np.float64)).ravel()
    ks = stats.ks_2samp(real, synth)
    return {
        "ks_statistic": float(ks.statistic),
        "real_mean": float(real.mean()),
        "real_std": float(real.std()),
        "model_mean": float(synth.mean()),
        "model_std": float(synth.std()),
        "real_p01": float(np.quantile(real, 0.01)),
        "model_p01": float(np.quantile(synth, 0.01)),
        "n_real": int(real.size),
        "n_model": int(synth.size),
        "shrinkage": model.shrinkage,
        "n_fit": model.n_fit,
    }


@dataclass(frozen=True)
class Searchers:
    """The rows searched against distractors and the persons they belong to: ``probes`` (rows, d),
    ``genuine`` each row's distance to its true match, ``base_hit`` (persons,) whether each person is
    at rank 1 among the real gallery alone, ``owners`` the person of each row (None: one per row)."""

    probes: np.ndarray
    genuine: np.ndarray
    base_hit: np.ndarray
    owners: np.ndarray | None = None


def predicted_rank1(
    model: DistractorModel, rows: Searchers, sizes, n_real: int, *, n_boot: int = 500, seed: int = 0
) -> dict:
    """Rank-1 against galleries of ``sizes`` (real subjects + distractors) predicted by the model.

    With ``rows.owners``, several captures of one person are fused: the person is found at size N
    only if no distractor beats the fused genuine distance in any capture. Returns the predicted
    rates and a 95% bootstrap interval over persons (the sampling uncertainty; the model's own error
    is measured separately)."""
    probes, owners = rows.probes, rows.owners
    base_hit = np.asarray(rows.base_hit, dtype=np.float64)
    f = np.clip(model.tail_cdf(probes, rows.genuine), 0.0, 1.0 - 1e-16) if len(probes) else np.zeros(0)
    per_row = np.log1p(-f)  # per row, per distractor
    log_surv = per_row if owners is None else np.bincount(owners, weights=per_row, minlength=len(base_hit))
    sizes = np.asarray(sizes, dtype=np.float64)
    n_d = np.maximum(sizes - n_real, 0)
    per_probe = base_hit[None, :] * np.exp(n_d[:, None] * log_surv[None, :])  # (sizes, probes)
    rate = per_probe.mean(axis=1)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, per_probe.shape[1], size=(n_boot, per_probe.shape[1]))
    boots = per_probe[:, idx].mean(axis=2)  # (sizes, n_boot)
    lo, hi = np.quantile(boots, [0.025, 0.975], axis=1)
    return {
        "gallery_size": sizes.astype(np.int64).tolist(),
        "rank1": rate.tolist(),
        "ci95_low": lo.tolist(),
        "ci95_high": hi.tolist(),
    }
