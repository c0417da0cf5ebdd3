"""Settings declared once: what they declare, and validated copies with dotted names."""


def test_setting_info_and_with_values():
    from privrisk.config import setting_info, with_values
    from privrisk.errors import ConfigError
    from privrisk.experiment import ExperimentConfig

    info = setting_info(ExperimentConfig, "offline.shots")
    assert info["default"] == 3 and info["min"] == 1 and info["max"] == 20 and info["help"]
    assert "auto" in setting_info(ExperimentConfig, "gallery.index_type")["choices"]
    cfg = with_values(ExperimentConfig(), {"offline.shots": 1, "gallery.threshold": 0.5, "seed": 3})
    assert (cfg.offline.shots, cfg.gallery.threshold, cfg.seed) == (1, 0.5, 3)
    assert cfg.offline.levels == ExperimentConfig().offline.levels
    for bad, match in (
        ({"offline.shots": 0}, "below the minimum"),
        ({"offline.bogus": 1}, "unknown"),
        ({"seed.x": 1}, "not a table"),
    ):
        try:
            with_values(ExperimentConfig(), bad)
        except ConfigError as exc:
            assert match in str(exc), exc
        else:
            raise AssertionError(bad)
