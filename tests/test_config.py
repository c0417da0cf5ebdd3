"""Settings declared once: what they declare, and validated copies with dotted names."""


def test_setting_info_and_with_values():
    from privrisk.config import ExperimentConfig, setting_info, with_values
    from privrisk.errors import ConfigError

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


def test_each_detector_has_its_upsampling_rule():
    from privrisk.config import FaceSettings

    hog = FaceSettings()
    assert hog.passes(72) == hog.passes(640) == (0, 1)
    cnn = FaceSettings(detector="cnn")  # MMOD finds faces from ~80 px; upsample while within cnn_max_side (400)
    assert cnn.passes(72) == (0, 2)  # a 24 px face in a 72 px capture: 288 px
    assert cnn.passes(120) == (0, 1)  # 240 px; 480 would pass the limit
    assert cnn.passes(240) == (0,)  # no retry: 480 px costs 4x
    assert FaceSettings(detector="cnn", multiple_faces="all").passes(72) == (2,)
    assert cnn.cache_key("m") != FaceSettings(detector="cnn", cnn_max_side=800).cache_key("m")
    assert hog.cache_key("m") == FaceSettings(cnn_max_side=800).cache_key("m")  # hog keys unchanged


def test_countermeasure_defaults_are_the_transforms_ladders():
    """config.py declares the transforms' ladders once (TRANSFORM_LADDERS); E4's defaults and the photo
    transforms must both be those ladders and occluders."""
    from privrisk.config import CountermeasureSettings
    from privrisk.transforms import OCCLUDERS, TRANSFORMS

    settings = CountermeasureSettings()
    assert settings.transforms == list(TRANSFORMS)
    for name in ("downscale", "blur", "jpeg", "crop"):
        assert settings.ladder(name) == list(TRANSFORMS[name].ladder), name
    assert settings.occlude == list(OCCLUDERS)


def test_the_fast_cnn_detectors_version_is_in_the_cache_key():
    from privrisk import config
    from privrisk.config import FaceSettings

    fast_cnn = FaceSettings(detector="cnn", engine="fast")
    assert f"|cnnnet={config.FAST_CNN_VERSION}" in fast_cnn.cache_key("m")
    assert "cnnnet" not in FaceSettings(detector="cnn", engine="dlib").cache_key("m")
    assert "cnnnet" not in FaceSettings(detector="hog", engine="fast").cache_key("m")
