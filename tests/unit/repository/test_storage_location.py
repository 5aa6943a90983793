"""Where a repository's storage, locks and requests are, from its location."""

from __future__ import annotations

from pathlib import Path

import pytest

from cps.config import S3Location
from cps.repository.storage import coordination_folder, location_fields, location_from, open_storage
from cps.repository.storage.local import LocalStorage


def test_a_folder_coordinates_in_itself_and_is_stored_in_itself(tmp_path: Path) -> None:
    storage = open_storage(tmp_path / "repo")
    assert isinstance(storage, LocalStorage) and storage.root == tmp_path / "repo"
    assert coordination_folder(tmp_path / "repo") == tmp_path / "repo"


def test_a_bucket_coordinates_in_a_local_folder_of_its_own(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CPS_STATE_DIR", str(tmp_path / "state"))
    one = S3Location("bucket", "mail", "http://127.0.0.1:8333")
    folders = {coordination_folder(location) for location in (
        one, S3Location("bucket", "mail2", one.endpoint_url),
        S3Location("bucket", "mail", "http://127.0.0.1:9000"), S3Location("other", "mail"))}
    assert len(folders) == 4, "another prefix, endpoint or bucket is another repository"
    assert coordination_folder(one).parent == tmp_path / "state" / "s3"
    assert coordination_folder(one).name.startswith("bucket-")
    assert coordination_folder(S3Location("bucket", "mail", one.endpoint_url, "eu-1", "cps")) == \
        coordination_folder(one), "region and profile reach the same repository"


def test_without_cps_state_dir_the_xdg_state_folder_is_used(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CPS_STATE_DIR", raising=False)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    assert coordination_folder(S3Location("bucket")).parent == tmp_path / "xdg" / "cps" / "s3"


@pytest.mark.parametrize("location", [S3Location("bucket", "a/b", "http://h:1", "r", "p"),
                                      S3Location("bucket")])
def test_a_location_crosses_to_another_process_whole(location: S3Location) -> None:
    assert location_from(location_fields(location)) == location


def test_a_folder_crosses_to_another_process_as_an_absolute_path(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert location_from(location_fields(Path("repo"))) == tmp_path / "repo"
