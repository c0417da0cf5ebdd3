import pytest

from privrisk.errors import ManifestError
from privrisk.manifest import read_manifest


def write(tmp_path, text, name="m.csv", encoding="utf-8"):
    p = tmp_path / name
    p.write_bytes(text.encode(encoding))
    return p


def test_rows_resolve_relative_to_manifest_and_keep_metadata(tmp_path):
    p = write(tmp_path, "subject_id,image,consent,consent_ref,age\nA,a.jpg,yes,form-1,30\n")
    m = read_manifest(p)
    (row,) = m.rows
    assert row.image == tmp_path / "a.jpg"
    assert row.consent_ref == "form-1" and row.meta["age"] == "30"


def test_row_without_consent_is_refused_and_listed(tmp_path):
    p = write(tmp_path, "subject_id,image,consent\nA,a.jpg,yes\nB,b.jpg,no\nC,c.jpg,\nD,d.jpg,TRUE\n")
    m = read_manifest(p)
    assert [r.subject_id for r in m.rows] == ["A", "D"]
    assert [(r.subject_id, r.line) for r in m.refused] == [("B", 3), ("C", 4)]
    assert all("consent" in r.reason for r in m.refused)


def test_duplicate_subject_row_is_refused(tmp_path):
    p = write(tmp_path, "subject_id,image,consent\nA,a.jpg,yes\nA,a.jpg,yes\nA,a2.jpg,yes\n")
    m = read_manifest(p)
    assert len(m.rows) == 2
    (dup,) = m.refused
    assert dup.line == 3 and "duplicate of line 2" in dup.reason


@pytest.mark.parametrize("path", ["/etc/passwd", "../secret.jpg", "a/../../b.jpg", "C:\\x.jpg", "\\\\host\\x.jpg"])
def test_paths_leaving_the_image_folder_are_refused(tmp_path, path):
    p = write(tmp_path, f'subject_id,image,consent\nA,"{path}",yes\n')
    m = read_manifest(p)
    assert not m.rows and "image" in m.refused[0].reason or "path" in m.refused[0].reason


def test_missing_columns_is_a_manifest_error(tmp_path):
    p = write(tmp_path, "subject,image\nA,a.jpg\n")
    with pytest.raises(ManifestError, match="missing column.*subject_id.*consent"):
        read_manifest(p)


def test_non_utf8_is_a_clear_error(tmp_path):
    p = write(tmp_path, "subject_id,image,consent\nJosé,a.jpg,yes\n", encoding="latin-1")
    with pytest.raises(ManifestError, match="not UTF-8"):
        read_manifest(p)


def test_utf8_bom_is_accepted(tmp_path):
    p = write(tmp_path, "\ufeffsubject_id,image,consent\nA,a.jpg,yes\n")
    assert len(read_manifest(p).rows) == 1


def test_missing_and_empty_manifest(tmp_path):
    with pytest.raises(ManifestError, match="not found"):
        read_manifest(tmp_path / "nope.csv")
    with pytest.raises(ManifestError, match="empty"):
        read_manifest(write(tmp_path, ""))


def test_extra_cells_refuse_the_row_only(tmp_path):
    p = write(tmp_path, "subject_id,image,consent\nA,a.jpg,yes,extra\nB,b.jpg,yes\n")
    m = read_manifest(p)
    assert [r.subject_id for r in m.rows] == ["B"]
    assert "more cells" in m.refused[0].reason


def test_sample_manifests_record_consent_for_every_subject(london):
    from privrisk.samples import sample_manifest

    for kind in ("neutral", "smiling"):
        m = read_manifest(sample_manifest(kind), london)
        assert len(m.rows) == 102 and not m.refused
        assert all(r.image.is_file() for r in m.rows)
        assert all(r.consent_ref for r in m.rows)
