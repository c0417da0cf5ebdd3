"""The experiment's stages, in the order :func:`privrisk.experiment.run_experiment` chains them.

Each stage is a function that takes the config (:class:`privrisk.config.ExperimentConfig`) and the
earlier stages' results and returns a frozen dataclass; the run carries them together as
:class:`.schema.ExperimentResults`, whose ``to_json`` is ``results.json`` (:mod:`.schema` states its shape):

- :mod:`.split`: which probe subjects have an identified photo in the gallery (open set), the
  gallery built from those photos, and the probes embedded (:class:`.split.Enrolled`);
- :mod:`.online`: E1 online to online (:class:`.online.OnlineResult`);
- :mod:`.offline`: E2 offline to online, degraded captures fused per person
  (:class:`.offline.OfflineResult`);
- :mod:`.timing`: seconds per identification, uncached (:class:`.timing.Timing`);
- :mod:`.accretion`: E3, what a stranger learns (:class:`.accretion.AccretionResult`);
- :mod:`.scaling`: identification against galleries padded with other faces
  (:class:`.scaling.ScalingResult`);
- :mod:`.differentials`: demographic differentials (:class:`.differentials.FairnessResult`);
- :mod:`.countermeasures`: E4, what protects a public photo (opt-in), hooked into
  ``run_experiment`` after the differentials (:class:`.countermeasures.CountermeasuresResult`;
  its statistics in :mod:`.countermeasure_stats`).

Shared pieces (embedding manifest rows, subject-level ranking, identification metrics, the result
cache) are in :mod:`.common`. Importing this package imports none of the stages.
"""
