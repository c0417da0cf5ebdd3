"""Consent manifests: which images may enter a gallery, and on whose word.

A manifest is a CSV file with at least the columns ``subject_id``, ``image`` and ``consent``;
any other column is kept as metadata (``consent_ref`` and ``source`` are recorded in the
gallery). Image paths are relative to the image folder (by default the manifest's own folder)
and may not leave it. A row is refused, and listed with its reason, when its consent is not an
affirmative value, when it repeats an earlier (subject, image) pair, or when its path is unsafe;
the rest of the manifest is still usable.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath, PureWindowsPath

from .errors import ManifestError

REQUIRED = ("subject_id", "image", "consent")
AFFIRMATIVE = frozenset({"yes", "y", "true", "1", "signed", "granted", "given", "consented"})


@dataclass(frozen=True)
class ManifestRow:
    line: int
    subject_id: str
    image: Path
    consent: str
    meta: dict = field(default_factory=dict)

    @property
    def consent_ref(self) -> str:
        return self.meta.get("consent_ref", "")

    @property
    def source(self) -> str:
        return self.meta.get("source", "")


@dataclass(frozen=True)
class Refusal:
    line: int
    subject_id: str
    image: str
    reason: str

    def __str__(self) -> str:
        who = f"subject {self.subject_id!r}" if self.subject_id else "row"
        return f"line {self.line}: {who} {self.image!r}: {self.reason}"


@dataclass(frozen=True)
class Manifest:
    path: Path
    image_root: Path
    rows: tuple[ManifestRow, ...]
    refused: tuple[Refusal, ...]

    @property
    def subjects(self) -> list[str]:
        return sorted({r.subject_id for r in self.rows})


def _safe_relative(raw: str) -> str | None:
    """Why ``raw`` may not be used as a path inside the image folder, or None when it may."""
    if not raw:
        return "empty image path"
    if "\x00" in raw:
        return "image path contains a NUL byte"
    for flavour in (PurePosixPath(raw), PureWindowsPath(raw)):
        if flavour.is_absolute() or flavour.drive or raw.startswith(("/", "\\")):
            return "absolute image paths are not allowed; give paths relative to the image folder"
        if ".." in flavour.parts:
            return "image path leaves the image folder ('..')"
    return None


def _read_text(path: Path) -> str:
    """The manifest's text (UTF-8, a BOM allowed), or a :class:`ManifestError` saying why not."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ManifestError(f"{path}: manifest not found") from None
    except OSError as exc:
        raise ManifestError(f"{path}: cannot read manifest ({exc.strerror or exc})") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ManifestError(f"{path}: not UTF-8 text (byte {exc.start}); save the CSV as UTF-8") from None
    if not text.strip():
        raise ManifestError(f"{path}: manifest is empty")
    return text


def read_manifest(path: str | Path, image_root: str | Path | None = None, *, max_rows: int = 5_000_000) -> Manifest:
    """Parse and check a consent manifest.

    Raises :class:`ManifestError` only when the file as a whole cannot be used (missing,
    unreadable, not UTF-8, required columns absent); row problems become ``refused`` entries.
    """
    path = Path(path)
    root = Path(image_root) if image_root is not None else path.parent
    reader = csv.DictReader(io.StringIO(_read_text(path), newline=""))
    header = [h.strip() for h in (reader.fieldnames or [])]
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        raise ManifestError(f"{path}: missing column(s) {', '.join(missing)} (found: {', '.join(header) or 'none'})")
    reader.fieldnames = header

    rows: list[ManifestRow] = []
    refused: list[Refusal] = []
    seen: dict[tuple[str, str], int] = {}
    try:
        for record in reader:
            line = reader.line_num
            if len(rows) + len(refused) >= max_rows:
                raise ManifestError(f"{path}: more than {max_rows:,} rows")
            if None in record:  # more cells than header columns
                subject = (record.get("subject_id") or "").strip()
                refused.append(Refusal(line, subject, "", "more cells than the header has columns"))
                continue
            values = {k: (v or "").strip() for k, v in record.items()}
            subject, image, consent = values["subject_id"], values["image"], values["consent"]
            if not any(values.values()):
                continue
            reason = _refusal_reason(subject, image, consent, seen)
            if reason is not None:
                refused.append(Refusal(line, subject, image, reason))
                continue
            seen[(subject, image)] = line
            meta = {k: v for k, v in values.items() if k not in REQUIRED}
            rows.append(ManifestRow(line, subject, root / image, consent, meta))
    except csv.Error as exc:
        raise ManifestError(f"{path}: malformed CSV near line {reader.line_num} ({exc})") from None
    return Manifest(path=path, image_root=root, rows=tuple(rows), refused=tuple(refused))


def _refusal_reason(subject: str, image: str, consent: str, seen: dict[tuple[str, str], int]) -> str | None:
    """Why a row may not be used (no subject, no affirmative consent, an unsafe path, a duplicate), or None."""
    if not subject:
        return "empty subject_id"
    if consent.lower() not in AFFIRMATIVE:
        return f"no affirmative consent (consent={consent!r}; accepted: {', '.join(sorted(AFFIRMATIVE))})"
    reason = _safe_relative(image)
    if reason is None and (subject, image) in seen:
        reason = f"duplicate of line {seen[(subject, image)]}"
    return reason
