"""The exposure score: how a person's visibility settings raise what a face reveals, with its
uncertainty, and which changes lower it most.

For an audience (stranger, friend of a friend, friend) the score is

    100 * P(linked) * (what they learn) / (the most anyone could learn)

**P(linked)** is the chance that a photo of your face leads this audience to your profile. It is
modelled as the paper's search was: a recogniser returns the top k candidates (k = 10, as in
Acquisti, Gross & Stutzman) and a person checks them, so P(linked) = P(your profile is among the
top k) at the size of the gallery the audience searches (a platform, 10^9, for a stranger; a
friends-of-friends network, 40,000, otherwise), read from the experiment's identification curves
(``points[*].rank10`` with ``rank10_range``; old curve files without ``points`` fall back to
rank-1, with a note). Friends know you: P(linked) = 1.

- **The audience's photo of you.** The default is ``offline_to_online/street``: a snapshot taken
  by a stranger, face about 40 pixels wide, blurred and compressed (E2's "street" level). A
  stranger photographs you unposed, at a distance, with a phone: "webcam" (80 px, the paper's
  cooperative campus captures, people looking into a camera) is too favourable to them, "far"
  (24 px) is usually not detected at all, and "sunglasses" is a special case. Choose another
  with ``curve``.
- **Several photos of your face.** Every photo of your face the audience can see (profile photo,
  public photos, tagged photos) is one more chance for the search to land on you, but they are
  not independent chances: ``1 - (1 - p)^n`` turned 11 photos at p = 0.3 into 98%. The rule here
  is measured: n photos of one face act like n fused captures in E2 (the best distance over the
  photos counts), and what n captures add over one is read from
  ``sample_data/multi_photo_gain.json`` (``scripts/measure_multi_photo.py``: E2's captures,
  1 to 6 per person, every subset averaged). It is applied as a shift in log-odds, delta(n) = logit P(n) - logit P(1), measured up to 6 photos
  (with its bootstrap range) and growing as c * ln(n) beyond (diminishing gain; range: that growth
  to no further gain). Curves whose offline points already fuse S captures are shifted by
  delta(n) - delta(S).
- **Wrong person.** The score also reports the chance the audience's search puts someone else at
  rank 1 under the operating threshold (``wrong_top_under_threshold``, the FPIR side): a risk to
  that other person, and to you if you check yourself with it.

**What they learn** is each visible field's sensitivity plus what the fields reveal together
(inferences), with **no double counting**: every inference belongs to a group of source fields
and a group counts ``max(sum of its visible fields, value of the inference)``: an inference only
tops its fields up to its own value, never adds on top (dated travel plans are worth 1.0 in all,
not 0.7 + 0.8). The national-ID inference prices only the ID number's secret part (digits that
are not simply the birth date or sex), so it adds to its fields: its value is the expected share
of that secret part a viewer can fix (:func:`privrisk.profiles.national_id_inference`). So a
profile's score is never higher than the sum of its fields' and inferences' separate
contributions (tested).

**Uncertainty.** Every score comes with a range: P(linked)'s range (the curve's ``rank10_range``,
which for modelled and extrapolated points spans two tail models and their subject bootstrap, combined with
the multi-photo range) times the content's range (the national-ID chance: one against two
attempts for the SSN).

Sensitivities are documented defaults (:data:`DEFAULT_SENSITIVITY`, each with its source or
marked as an assumption in :data:`SENSITIVITY_SOURCES`), estimated from a population with item
response theory (:func:`estimate_sensitivity`, after Liu and Terzi, ACM TKDD 2010), or your own
(``--sensitivity FILE``).

The package is split by role: the identification curves (:mod:`.curves`), the multi-photo gain
(:mod:`.multi_photo`), P(linked) (:mod:`.link`), field sensitivities and their estimation
(:mod:`.sensitivity`), what a profile reveals (:mod:`.content`), the score (:mod:`.scoring`), the score
in plain words (:mod:`.words`), the changes that lower it (:mod:`.changes`) and populations
(:mod:`.population`). Its settings are :class:`privrisk.config.ExposureSettings`.
"""

from __future__ import annotations

from ..config import DEFAULT_CURVE, ExposureSettings
from .changes import Change, Option, change_options, search_changes, single_changes, top_changes
from .content import INFERENCES, FieldPart, InferenceRule, content, content_max
from .curves import CurvePoint, IdentificationCurves, export_curves
from .link import LinkEstimate, LinkSource, link_probability, usable_photos
from .multi_photo import MultiPhotoGain, multi_photo_inputs
from .population import harden, population_analysis, population_plot, population_scores
from .scoring import ExposureScore, Scorer, score
from .sensitivity import (
    DEFAULT_SENSITIVITY,
    IRT_BOUNDS,
    SENSITIVITY_SOURCES,
    estimate_irt,
    estimate_sensitivity,
    load_sensitivity,
    sensitivities,
)

__all__ = [
    "DEFAULT_CURVE",
    "DEFAULT_SENSITIVITY",
    "INFERENCES",
    "IRT_BOUNDS",
    "SENSITIVITY_SOURCES",
    "Change",
    "CurvePoint",
    "ExposureScore",
    "ExposureSettings",
    "FieldPart",
    "IdentificationCurves",
    "InferenceRule",
    "LinkEstimate",
    "LinkSource",
    "MultiPhotoGain",
    "Option",
    "Scorer",
    "change_options",
    "content",
    "content_max",
    "estimate_irt",
    "estimate_sensitivity",
    "export_curves",
    "harden",
    "link_probability",
    "load_sensitivity",
    "multi_photo_inputs",
    "population_analysis",
    "population_plot",
    "population_scores",
    "score",
    "search_changes",
    "sensitivities",
    "single_changes",
    "top_changes",
    "usable_photos",
]
