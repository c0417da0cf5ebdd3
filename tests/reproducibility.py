"""What "the same numbers" means between two runs, and the one comparison every test uses for it.

Same machine, same thread count: every number is the same, bit for bit. Another machine (another
processor's vector kernels, another BLAS, another FAISS build): counts, ranks, decisions, labels and
kinds are the same exactly; floats agree within the tolerance below.

The tolerance comes from float32 arithmetic, not from differences seen on one machine:

- embeddings are float32, whose unit roundoff is ``u = 2**-24`` (about 6e-8);
- the longest reduction over them is a 128-term sum (a squared distance or a dot product), whose
  rounding error can reach ``128 * u``, about 7.6e-6 relative, and depends on the order in which
  the processor's kernels add the terms;
- what is computed from those distances in float64 (tail-model fits by an optimiser, KS statistics,
  logs and ratios) carries that error times its condition number; we allow a factor of about 13.

So ``RTOL = 1e-4``. Values at or below ``ATOL = 1e-12`` in magnitude are zeros in disguise and are
compared absolutely; every other float is compared relatively, so a change of 1e-3 in any of them is
always noticed and a change of 1e-8 never is.

One kind of number is different: centred values, whose rounding error is absolute rather than relative
to the value itself. A tail model's ``body`` (quantiles of z-scores of squared distances, many near
zero) and a standardiser's ``mu`` (the mean embedding, whose components are near zero) are
differences of unit-scale numbers, so their error is about ``128 * u`` of the unit scale whatever
their own size. Keys named in ``CENTRED_KEYS`` are compared absolutely with ``ATOL_CENTRED = 1e-5``.
"""

from __future__ import annotations

import math

import numpy as np

FLOAT32_UNIT_ROUNDOFF = 2.0**-24
LONGEST_REDUCTION = 128  # terms in one distance: the embedding's length
CONDITION_ALLOWANCE = 13  # downstream float64 fits and transforms
RTOL = 1e-4
ATOL = 1e-12
CENTRED_KEYS = frozenset({"body", "mu"})
ATOL_CENTRED = 1e-5
assert FLOAT32_UNIT_ROUNDOFF * LONGEST_REDUCTION * CONDITION_ALLOWANCE <= RTOL
assert FLOAT32_UNIT_ROUNDOFF * LONGEST_REDUCTION <= ATOL_CENTRED


def floats_agree(got: float, want: float, rtol: float = RTOL, atol: float = ATOL) -> bool:
    """The module's rule for one pair of floats: NaN equals NaN; at or below ``atol`` absolutely;
    above it relatively to ``want``."""
    if math.isnan(want) or math.isnan(got):
        return math.isnan(want) and math.isnan(got)
    if math.isinf(want) or math.isinf(got):
        return got == want
    if abs(want) <= atol or rtol == 0.0:
        return abs(got - want) <= atol
    return abs(got - want) <= rtol * abs(want)


def json_differences(got, want, where: str = "", rtol: float = RTOL, atol: float = ATOL) -> list[str]:
    """Where two JSON values differ: keys, lengths, strings, booleans and integers exactly, floats
    by :func:`floats_agree` (under a key in ``CENTRED_KEYS``: absolutely, to ``ATOL_CENTRED``). Each
    difference names its path, both values and the tolerance."""
    if isinstance(want, dict) and isinstance(got, dict):
        out = [f"{where}/{k}: missing" for k in want if k not in got]
        out += [f"{where}/{k}: not in the reference" for k in got if k not in want]
        for k in want:
            if k in got:
                centred = k in CENTRED_KEYS
                out += json_differences(
                    got[k], want[k], f"{where}/{k}", 0.0 if centred else rtol, ATOL_CENTRED if centred else atol
                )
        return out
    if isinstance(want, list) and isinstance(got, list):
        if len(want) != len(got):
            return [f"{where}: length {len(got)} != {len(want)}"]
        return [
            d for i, (g, w) in enumerate(zip(got, want)) for d in json_differences(g, w, f"{where}[{i}]", rtol, atol)
        ]
    if isinstance(want, float) or isinstance(got, float):
        if isinstance(got, bool) or isinstance(want, bool) or not isinstance(got, (int, float)):
            return [f"{where}: {got!r} != {want!r}"]
        if floats_agree(float(got), float(want), rtol, atol):
            return []
        if rtol == 0.0:
            return [f"{where}: {got!r} != {want!r} (absolute difference {abs(got - want):.2g} > atol {atol:g})"]
        rel = abs(got - want) / abs(want) if want else math.inf
        return [f"{where}: {got!r} != {want!r} (relative difference {rel:.2g} > rtol {rtol:g}; atol {atol:g})"]
    return [] if got == want and type(got) is type(want) else [f"{where}: {got!r} != {want!r}"]


def assert_floats_close(got, want, rtol: float = RTOL, atol: float = ATOL, what: str = "") -> None:
    """Array form of :func:`floats_agree` for numbers that went through BLAS, FAISS or threads."""
    g = np.asarray(got, np.float64)
    w = np.asarray(want, np.float64)
    assert g.shape == w.shape, f"{what} shape {g.shape} != {w.shape}"
    small = np.abs(w) <= atol
    bad = np.where(small, np.abs(g - w) > atol, np.abs(g - w) > rtol * np.abs(w))
    bad &= ~(np.isnan(g) & np.isnan(w))
    if bad.any():
        i = tuple(int(v) for v in np.argwhere(bad)[0])
        raise AssertionError(
            f"{what}{list(i)}: {g[i]!r} != {w[i]!r} ({int(bad.sum())} of {bad.size} outside rtol {rtol:g} / atol {atol:g})"
        )
