"""Typed errors. The library raises these; the CLI and the app translate them at the edge."""

from __future__ import annotations


class PrivriskError(Exception):
    """Base class of every error privrisk raises on purpose."""


class ModelUnavailable(PrivriskError):
    """The face model (dlib + face_recognition + its weights) cannot be loaded."""


class EmbedderError(ModelUnavailable):
    """An ONNX face-embedding model cannot be used. ``path`` names the model file and ``reason`` says why
    (missing, not ONNX, wrong input shape, non-finite output)."""

    def __init__(self, path: object, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


class ImageError(PrivriskError):
    """An image cannot be used. ``path`` names it and ``reason`` says why."""

    def __init__(self, path: object, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


class ImageTooLarge(ImageError):
    """The image declares more pixels than the configured limit (decompression bomb guard)."""


class FaceNotFound(ImageError):
    """No face was detected in the image."""


class SeveralFaces(ImageError):
    """More than one face was found and the policy asks for exactly one."""


class ManifestError(PrivriskError):
    """A manifest cannot be read at all (missing file, missing columns, bad encoding)."""


class ConfigError(PrivriskError):
    """A configuration value is missing, of the wrong type or out of range."""


class GalleryError(PrivriskError):
    """A gallery directory is missing, incompatible or damaged."""


class ProfileError(PrivriskError):
    """A profile JSON does not follow the schema."""


class EstimationError(PrivriskError):
    """A statistical fit cannot be trusted (did not converge, or its parameters sit at their bounds)."""


class OutputNotEmpty(PrivriskError):
    """An output folder holds files that are not a previous privrisk run's; nothing is written there
    unless the caller says to overwrite (``overwrite=True``, ``--force``)."""

    def __init__(self, path: object, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")
