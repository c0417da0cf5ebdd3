"""Demographic differentials against the tail model: does the validated impostor-tail model
(:mod:`privrisk.tailmodel`) predict each group's real false-match rate, and what it extrapolates
per group to galleries of a million or a billion faces."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import PrivriskError
from .cells import ALPHA, SMALL_FLAG, tkey
from .estimate import FaceSet, group_labels


def tail_check(result: Mapping, attribute: str, predicted: Mapping, *, tail_model: str = "", note: str = "") -> dict:
    """Per group, does a model's predicted impostor rate match the real one?

    ``predicted`` = ``{"thresholds": [...], "by_group": {group: {"rate": [...], "rate_ci95": [[lo, hi], ...]}}}``
    (the shape of ``tailmodel.predict_pair_rate``; ``rate_ci95`` may be left out), rates parallel to
    ``thresholds``: the model's chance that a probe of the group lies within the threshold of one
    random face of someone else. The real rate is the group's FMR cell over all impostor pairs
    (``fmr[group]["all"]``) of :func:`analyse`'s ``result``, with its 95% interval.

    A row is "within" when the model's interval (or its point, without one) meets the real 95%
    interval; "model too low" / "model too high" otherwise; "not judged" when neither side has a
    pair (no real event and the model's upper end under one pair in the cell). Thresholds that the
    analysis did not compute are skipped."""
    attrs = result.get("attributes") or {}
    if attribute not in attrs:
        raise PrivriskError(
            f"tail check: attribute {attribute!r} is not in the fairness result (has: {', '.join(attrs) or 'none'})"
        )
    fmr = attrs[attribute]["fmr"]
    thr = [float(t) for t in predicted["thresholds"]]
    rows = []
    for group, pred in predicted["by_group"].items():
        if group not in fmr:
            raise PrivriskError(f"tail check: group {group!r} has no real cells under {attribute!r}")
        rates = np.asarray(pred["rate"], np.float64)
        cis = pred.get("rate_ci95")
        if len(rates) != len(thr) or (cis is not None and len(cis) != len(thr)):
            raise PrivriskError(f"tail check: group {group!r} needs one predicted rate per threshold ({len(thr)})")
        rows += [
            r
            for j, t in enumerate(thr)
            if (r := _tail_row(group, fmr[group], t, rates[j], None if cis is None else cis[j]))
        ]
    judged = [r for r in rows if not r["verdict"].startswith("not judged")]
    bad = [r for r in judged if r["verdict"] != "within"]
    summary = (
        f"the model's per-group impostor rate is within the real 95% interval in {len(judged) - len(bad)} of "
        f"{len(judged)} judged cells"
    )
    if bad:
        summary += "; not within for " + ", ".join(f"{r['group']} at {r['threshold']:g} ({r['verdict']})" for r in bad)
    return {
        "attribute": attribute,
        "tail_model": tail_model,
        "thresholds": thr,
        "rows": rows,
        "all_within": not bad,
        "n_judged": len(judged),
        "summary": summary,
        "note": note,
    }


def _tail_row(group: str, fmr_row: Mapping, t: float, rate: float, ci) -> dict | None:
    """One group and threshold: the real cell against the model's rate (and interval ``ci``, or None)."""
    real = fmr_row["all"].get(tkey(t))
    if real is None or real["rate"] is None:
        return None
    m_lo, m_hi = (float(ci[0]), float(ci[1])) if ci is not None else (float(rate),) * 2
    r_lo, r_hi = real["ci95"]
    if real["events"] == 0 and m_hi * real["trials"] < 1.0:
        verdict = "not judged (no pair on either side)"
    elif m_hi < r_lo:
        verdict = "model too low"
    elif m_lo > r_hi:
        verdict = "model too high"
    else:
        verdict = "within"
    return {
        "group": group,
        "threshold": t,
        "real_rate": real["rate"],
        "real_ci95": [r_lo, r_hi],
        "events": real["events"],
        "pairs": real["trials"],
        "subjects": real["subjects"],
        "flag": real["flag"],
        "model_rate": float(rate),
        "model_ci95": [m_lo, m_hi],
        "verdict": verdict,
    }


def group_rates_from_replicates(reps: np.ndarray, pairs_per_probe, probe_labels) -> dict:
    """Per-group predicted impostor rates from per-probe predictions.

    ``reps`` (R + 1, n_probes, T): each probe's predicted chance of lying within each of T thresholds
    of one random face of someone else, under the point fit (row 0) and R bootstrap refits. A group's
    rate is the pair-weighted mean over its probes (``pairs_per_probe`` = impostor pairs per probe);
    its interval the 2.5-97.5% quantiles over the refits, widened to contain the point.
    Returns ``{group: {"n", "rate", "rate_ci95"}}``, the ``by_group`` input of :func:`tail_check`."""
    reps = np.asarray(reps, np.float64)
    w = np.asarray(pairs_per_probe, np.float64)
    labels = np.asarray([str(x) for x in probe_labels], dtype=object)
    if reps.ndim != 3 or reps.shape[1] != len(w) or len(labels) != len(w):
        raise PrivriskError(
            "predicted rates: expected (replicates, probes, thresholds) with one weight and label per probe"
        )
    out = {}
    for g in sorted(set(labels.tolist())):
        sel = labels == g
        if w[sel].sum() <= 0:
            continue
        v = (reps[:, sel, :] * w[None, sel, None]).sum(axis=1) / w[sel].sum()
        if len(v) > 1:
            lo, hi = np.quantile(v[1:], [ALPHA / 2, 1 - ALPHA / 2], axis=0)
            lo, hi = np.minimum(lo, v[0]), np.maximum(hi, v[0])
        else:
            lo = hi = v[0]
        out[g] = {
            "n": int(sel.sum()),
            "rate": v[0].tolist(),
            "rate_ci95": [[float(a), float(b)] for a, b in zip(lo, hi)],
        }
    return out


def _envelope(by_kind: Mapping[str, dict]) -> dict:
    """One ``by_group`` from several tail models' ``by_group``: the first model's rate, the union
    (lowest lower end, highest upper end) of every model's interval."""
    first = next(iter(by_kind.values()))
    out = {}
    for g, v in first.items():
        lo = np.min([np.asarray(bk[g]["rate_ci95"])[:, 0] for bk in by_kind.values() if g in bk], axis=0)
        hi = np.max([np.asarray(bk[g]["rate_ci95"])[:, 1] for bk in by_kind.values() if g in bk], axis=0)
        out[g] = {"n": v["n"], "rate": v["rate"], "rate_ci95": [[float(a), float(b)] for a, b in zip(lo, hi)]}
    return out


def _fold_pair_reps(tailmodel, cv: dict, p: np.ndarray, thr, groups) -> np.ndarray:
    """(replicates, probes, thresholds): each probe's predicted pair rate from its fold's model."""
    models, fold_of = cv["fold_models"], np.asarray(cv["fold_of"])
    n_rep = min(len(m.replicates()) for m in models.values())
    reps = np.full((n_rep, len(p), len(thr)), np.nan)
    for k, model in models.items():
        sel = fold_of == k
        g = None if groups is None else np.asarray(groups, dtype=object)[sel]
        for b, params in enumerate(model.replicates()[:n_rep]):
            reps[b, sel] = tailmodel.pair_cdf(model, p[sel], np.asarray(thr)[None, :], g, params)
    return reps


@dataclass(frozen=True)
class ScaleSettings:
    """Where :func:`scale_by_group` extrapolates: the operating ``threshold``, the gallery ``sizes``,
    and the subject count under which a group is flagged small. A parameter object, not a user setting
    (those are declared in :mod:`privrisk.config`): it is filled from an analysis's result and
    :class:`TailCheckOptions`."""

    threshold: float
    sizes: Sequence[int] = (10**6, 10**9)
    small_subjects: int = 10


def _arrays(faces: FaceSet) -> tuple[np.ndarray, np.ndarray]:
    return np.asarray(faces.vectors, np.float64), np.asarray(faces.subjects).astype(str)


def scale_by_group(
    cvs: Mapping[str, dict],
    probes: FaceSet,
    gallery: FaceSet,
    labels_for: Mapping[str, Sequence[str]],
    fit_groups: Sequence[str],
    scale: ScaleSettings,
) -> dict:
    """Per group: predicted rank-1 and FPIR at the threshold in galleries of ``scale.sizes`` faces, as ranges.

    ``cvs`` maps a tail-model kind to its :func:`privrisk.tailmodel.cross_validate` result fitted with
    ``fit_groups`` (each probe's group; group-conditional tail mass), so each probe is predicted by the
    model of the fold that left its person out, with its own group's tail. Every probe is a search:
    mated against the real gallery plus ``N - n_real`` model faces (rank 1 = first among the real
    gallery and no model face within the genuine distance), and mate removed for FPIR (a false alarm
    = the nearest real non-mate or any model face within the threshold). ``labels_for`` maps
    attribute name -> each probe's group under it. The range spans every bootstrap refit (2.5-97.5%)
    of every kind; the value is the first kind's point fit. All such values are extrapolated: the
    per-face probabilities that decide them lie far below what the real pairs can check."""
    vals = _scale_replicates(cvs, probes, gallery, fit_groups, scale)
    ps = _arrays(probes)[1]
    return {
        "threshold": float(scale.threshold),
        "sizes": [int(s) for s in scale.sizes],
        "n_real_gallery": len(gallery.subjects),
        "rows": {attr: _scale_rows(vals, ps, labels, scale) for attr, labels in labels_for.items()},
        "method": (
            "every probe searched against the real gallery plus N - n_real model faces; per-face chances from the "
            "group-conditional tail model of the fold that left the person out; ranges over every bootstrap "
            f"refit of {', '.join(cvs)}"
        ),
        "composition": (
            "the group multipliers are relative to the fit faces' mix of groups; a platform whose faces are "
            "mixed differently (more faces of your own group) puts more look-alikes near you than these figures say"
        ),
    }


def _scale_replicates(
    cvs: Mapping[str, dict], probes: FaceSet, gallery: FaceSet, fit_groups: Sequence[str], scale: ScaleSettings
) -> dict[str, np.ndarray]:
    """Per kind, (replicates, 2 quantities (rank-1 hit, false alarm), probes, sizes): each probe's chance."""
    from .. import tailmodel

    (p, ps), (g, gs) = _arrays(probes), _arrays(gallery)
    d = np.sqrt(np.maximum((p**2).sum(1)[:, None] + (g**2).sum(1)[None, :] - 2 * p @ g.T, 0))
    same = ps[:, None] == gs[None, :]
    genuine = np.where(same, d, np.inf).min(axis=1)
    nonmate = np.where(same, np.inf, d).min(axis=1)
    hit = np.isfinite(genuine) & (genuine < nonmate)
    n_other = np.array([max(int(s) - len(g), 0) for s in scale.sizes], np.float64)
    owners = np.arange(len(p))
    vals = {}
    for kind, cv in cvs.items():
        models, fold = cv["fold_models"], np.asarray(cv["fold_of"])
        n_rep = min(len(m.replicates()) for m in models.values())
        cf, rows = tailmodel.CrossFit(models, fold), tailmodel.Captures(p, owners, len(p), fit_groups)
        out = np.zeros((n_rep, 2, len(p), len(scale.sizes)))
        for rep in range(n_rep):
            queries = [(np.where(hit, genuine, 0.0), None), (np.full(len(p), scale.threshold), None)]
            s1, sth = tailmodel.crossfit_survivals(cf, rows, queries, n_other, rep=rep)
            out[rep, 0] = hit[:, None] * s1
            out[rep, 1] = 1 - (nonmate > scale.threshold)[:, None] * sth
        vals[kind] = out
    return vals


def _group_range(vals: Mapping[str, np.ndarray], sel: np.ndarray, q: int) -> tuple[np.ndarray, ...]:
    """A group's mean over its probes of quantity ``q``: the first kind's point fit and the range over
    every kind's refits (widened to contain the point), per size."""
    per_kind = {k: v[:, q, sel, :].mean(axis=1) for k, v in vals.items()}  # (reps, sizes)
    lo = np.min([np.quantile(v[1:], 0.025, axis=0) if len(v) > 1 else v[0] for v in per_kind.values()], 0)
    hi = np.max([np.quantile(v[1:], 0.975, axis=0) if len(v) > 1 else v[0] for v in per_kind.values()], 0)
    pt = per_kind[next(iter(vals))][0]
    return pt, np.minimum(lo, pt), np.maximum(hi, pt)


def _scale_rows(vals: Mapping[str, np.ndarray], ps: np.ndarray, attr_labels, scale: ScaleSettings) -> list[dict]:
    """One attribute's rows: per group, quantity and gallery size, the extrapolated value and range."""
    labels = np.asarray([str(x) for x in attr_labels], dtype=object)
    rows = []
    for grp in sorted(set(labels.tolist())):
        sel = labels == grp
        n_subj = len({ps[i] for i in np.where(sel)[0]})
        small = n_subj < scale.small_subjects
        for q, what in enumerate(("rank1", "fpir_at_threshold")):
            pt, lo, hi = _group_range(vals, sel, q)
            rows += [
                {
                    "group": grp,
                    "quantity": what,
                    "gallery_size": int(size),
                    "kind": "extrapolated",
                    "value": float(pt[j]),
                    "range": [float(lo[j]), float(hi[j])],
                    "probes": int(sel.sum()),
                    "subjects": n_subj,
                    "flag": SMALL_FLAG if small else None,
                    "note": (
                        f"{n_subj} people are too few to fit this group's own tail: its multiplier is "
                        "pulled towards the pool, so the range says more about the pool than the group"
                        if small
                        else None
                    ),
                }
                for j, size in enumerate(scale.sizes)
            ]
    return rows


@dataclass(frozen=True)
class TailCheckOptions:
    """How :func:`tail_check_cross_validated` fits: the first tail ``kind`` (and every kind whose refits
    span the intervals, by default all of them with ``group_conditional``), ``k_folds`` subject folds,
    ``n_boot`` refits per fold from ``seed``, and the gallery ``sizes`` it extrapolates to. A parameter
    object for library callers, not a user setting: the experiment sets only its seed."""

    kind: str = "gpd"
    k_folds: int = 5
    n_boot: int = 100
    seed: int = 0
    group_conditional: bool = True
    kinds: Sequence[str] | None = None
    sizes: Sequence[int] = (10**6, 10**9)


@dataclass(frozen=True)
class _Fit:
    """What the per-group checks share: the data as arrays, each probe's group under every attribute,
    the fit's groups and kinds, and the cross-validations per kind."""

    p: np.ndarray
    ps: np.ndarray
    gv: np.ndarray
    gs: np.ndarray
    thr: list[float]
    labels_for: dict[str, list]
    finest: str | None
    fit_groups: list | None
    kinds: list[str]
    cvs: dict[str, dict]
    opts: dict[str, Any]


def _probe_labels(result: Mapping, ps: np.ndarray, gs: np.ndarray, attributes: Mapping) -> dict[str, list]:
    """Each probe's group under every attribute of ``result``."""
    names = sorted(set(ps) | set(gs))
    labels_for = {}
    for attr in result.get("attributes", {}):
        columns = [c for c in result["group_columns"] if c in attr.split("+")]
        labels = group_labels(names, attributes, columns, combine="+" in attr)[attr]
        by_subject = dict(zip(names, labels))
        labels_for[attr] = [by_subject[s] for s in ps]
    return labels_for


def _fit(result: Mapping, probes: FaceSet, gallery: FaceSet, attributes: Mapping, options: TailCheckOptions) -> _Fit:
    """Cross-validates the tail model of every kind, with the finest attribute's groups when asked."""
    from .. import tailmodel  # same stage (a model of impostor distances); imported lazily

    (p, ps), (gv, gs) = _arrays(probes), _arrays(gallery)
    thr = [float(t) for t in result["thresholds"]]
    labels_for = _probe_labels(result, ps, gs, attributes)
    attrs = list(labels_for)
    finest = next((a for a in attrs if "+" in a), attrs[0] if attrs else None)
    fit_groups = labels_for[finest] if (options.group_conditional and finest) else None
    kind = options.kind
    default_kinds = [kind, *[k for k in tailmodel.KINDS if k != kind]] if options.group_conditional else [kind]
    kinds = list(options.kinds or default_kinds)
    opts: dict[str, Any] = {
        "thresholds": thr,
        "k_folds": options.k_folds,
        "n_boot": options.n_boot,
        "seed": options.seed,
    }
    cvs = {k: tailmodel.cross_validate(tailmodel.Pairs(p, ps, gv, gs, fit_groups), kind=k, **opts) for k in kinds}
    return _Fit(p, ps, gv, gs, thr, labels_for, finest, fit_groups, kinds, cvs, opts)


def tail_check_cross_validated(
    result: Mapping,
    probes: FaceSet,
    gallery: FaceSet,
    attributes: Mapping[str, Mapping[str, str]],
    options: TailCheckOptions | None = None,
) -> dict:
    """The validated tail model (:mod:`privrisk.tailmodel`, issue 11), checked group by group.

    The model is fitted by subject-level K-fold cross-validation, so every probe's prediction comes
    from a model that never saw that person. With ``group_conditional`` (default) the fit is given
    each probe's group under the finest attribute (the combination, e.g. gender+ethnicity, when
    present): each group's tail mass gets an empirical-Bayes multiplier
    (:func:`privrisk.tailmodel._group_tail`), and each probe is predicted with its group's. Per group
    of every attribute, the predicted impostor rate (the range over ``kinds``' bootstrap refits) is
    compared with the real FMR (all impostor pairs) by :func:`tail_check`. The same check without
    groups is kept under ``without_groups`` (before/after). Also per group: rank-1 and FPIR at the
    operating threshold in galleries of ``sizes`` (:func:`scale_by_group`). ``options``: see
    :class:`TailCheckOptions`."""
    from .. import tailmodel

    options = options or TailCheckOptions()
    fit = _fit(result, probes, gallery, attributes, options)
    first = fit.cvs[fit.kinds[0]]
    pairs = (fit.ps[:, None] != fit.gs[None, :]).sum(axis=1)
    reps = {k: _fold_pair_reps(tailmodel, cv, fit.p, fit.thr, fit.fit_groups) for k, cv in fit.cvs.items()}
    n_rep = min(len(m.replicates()) for m in first["fold_models"].values())
    how = (
        f"{options.k_folds}-fold subject cross-validation (each probe predicted by a model fitted without its person; "
        f"{n_rep - 1} bootstrap refits per fold)"
    )
    grouped = (
        f"; group-conditional: each {fit.finest} group's tail mass gets an empirical-Bayes multiplier; "
        f"intervals span {' and '.join(fit.kinds)} tails"
    )
    checks = {}
    for attr, labels in fit.labels_for.items():
        by_kind = {k: group_rates_from_replicates(r, pairs, labels) for k, r in reps.items()}
        predicted = {"thresholds": fit.thr, "by_group": _envelope(by_kind)}
        note = how + (grouped if fit.fit_groups is not None else "; no group labels in the fit")
        checks[attr] = tail_check(result, attr, predicted, tail_model=first["tail_model"], note=note)
    out = {
        "tail_model": first["tail_model"],
        "kind": fit.kinds[0],
        "kinds": fit.kinds,
        "group_conditional": fit.fit_groups is not None,
        "fit_groups": fit.finest if fit.fit_groups is not None else None,
        "overall_validation_pass": first["pass"],
        "overall_verdict": first["verdict"],
        "pit_ks_p": first["pit_ks_p"],
        "by_attribute": checks,
    }
    if fit.fit_groups is not None:
        out.update(_group_extras(result, fit, pairs, how, options))
    return out


def _group_extras(result: Mapping, fit: _Fit, pairs: np.ndarray, how: str, options: TailCheckOptions) -> dict:
    """With a group-conditional fit: each fold's multipliers, the same check without groups (before and
    after) and the per-group extrapolation to large galleries."""
    from .. import tailmodel

    fm = fit.cvs[fit.kinds[0]]["fold_models"]
    plain = tailmodel.cross_validate(tailmodel.Pairs(fit.p, fit.ps, fit.gv, fit.gs), kind=fit.kinds[0], **fit.opts)
    r0 = _fold_pair_reps(tailmodel, plain, fit.p, fit.thr, None)
    without = {
        a: tail_check(
            result,
            a,
            {"thresholds": fit.thr, "by_group": group_rates_from_replicates(r0, pairs, labels)},
            tail_model=plain["tail_model"],
            note=how + "; no group labels in the fit",
        )["summary"]
        for a, labels in fit.labels_for.items()
    }
    scale = ScaleSettings(float(result["operating_threshold"]), options.sizes, int(result.get("small_subjects", 10)))
    return {
        "multipliers_by_fold": {int(k): dict(m.params.group_tail) for k, m in fm.items()},
        "without_groups": {
            "overall_validation_pass": plain["pass"],
            "pit_ks_p": plain["pit_ks_p"],
            "by_attribute": without,
        },
        "scale": scale_by_group(
            fit.cvs, FaceSet(fit.p, fit.ps), FaceSet(fit.gv, fit.gs), fit.labels_for, fit.fit_groups or [], scale
        ),
    }
