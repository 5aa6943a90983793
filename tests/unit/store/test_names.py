from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cps.errors import InvalidName
from cps.store.names import (
    check_address,
    check_folder_name,
    join_path,
    split_mailbox_path,
    split_path,
)


@pytest.mark.parametrize(
    "name, problem",
    [
        ("", "empty"),
        (".", "reserved"),
        ("..", "reserved"),
        ("a/b", "separator"),
        ("tab\there", "control"),
        ("new\nline", "control"),
        ("bell\x07", "control"),
        ("right-to-left \u202e override", "control"),
        (" leading", "white space"),
        ("trailing ", "white space"),
        ("é" * 128, "255 bytes"),
    ],
)
def test_hostile_folder_names_are_refused_with_the_reason(name: str, problem: str) -> None:
    with pytest.raises(InvalidName) as caught:
        check_folder_name(name)
    assert problem in caught.value.message
    assert caught.value.hint


@pytest.mark.parametrize("name", ["Inbox", "Ünï cödé", "日本語のフォルダ", "a.b", "x" * 255, "🦆"])
def test_ordinary_unicode_names_are_kept(name: str) -> None:
    assert check_folder_name(name) == name


def test_names_are_normalised_to_nfc() -> None:
    assert check_folder_name("e\u0301te") == "\u00e9te"


def test_paths_split_and_join() -> None:
    assert split_path("/Inbox/Projects/2026/") == ("Inbox", "Projects", "2026")
    assert join_path(("Inbox", "Projects")) == "Inbox/Projects"
    with pytest.raises(InvalidName):
        split_path("Inbox/../etc")
    with pytest.raises(InvalidName):
        split_path("///")


def test_mailbox_paths() -> None:
    assert split_mailbox_path("Alice@Example.COM/Inbox/A") == ("alice@example.com", ("Inbox", "A"))
    assert split_mailbox_path("alice@example.com") == ("alice@example.com", ())


@pytest.mark.parametrize("address", ["alice", "@example.com", "alice@", "a b@example.com",
                                      "a<b>@example.com", "a@b/c"])
def test_bad_addresses_are_refused(address: str) -> None:
    with pytest.raises(InvalidName):
        check_address(address)


@given(st.lists(st.text(min_size=1, max_size=40), min_size=1, max_size=5))
def test_any_accepted_path_round_trips(names: list[str]) -> None:
    try:
        checked = tuple(check_folder_name(n) for n in names)
    except InvalidName:
        return
    assert split_path(join_path(checked)) == checked
