"""Folder names as file names: encoding reads back, and never escapes or overflows a directory."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from cps.store.names import MAX_NAME_BYTES, check_folder_name
from cps.store.transfer.filenames import MAX_FILE_NAME_BYTES, decode_name, encode_name, fit_name


def _storable(name: str) -> bool:
    try:
        return check_folder_name(name) == name
    except Exception:
        return False


# Names the store accepts, biased towards the characters the encoding cares about.
_NAMES = st.text(
    alphabet=st.one_of(st.sampled_from(".%2Eemlbox5 "), st.characters(codec="utf-8")),
    min_size=1, max_size=40,
).filter(_storable)


@given(_NAMES, st.booleans(), st.sampled_from(["", ".eml", ".mbox"]))
def test_encoded_names_decode_back_and_are_safe(name: str, all_dots: bool, suffix: str) -> None:
    encoded = encode_name(name, all_dots=all_dots, suffix=suffix)
    assert decode_name(encoded) == name
    assert "/" not in encoded and "\0" not in encoded
    assert not encoded.startswith(".")
    assert not (all_dots and "." in encoded)
    assert not (suffix and encoded.endswith(suffix))


def test_examples() -> None:
    assert encode_name("Projects") == "Projects"
    assert encode_name("..") == "%2E."
    assert encode_name("v1.2 release", all_dots=True) == "v1%2E2 release"
    assert encode_name("notes.eml", suffix=".eml") == "notes%2Eeml"
    assert encode_name("50%") == "50%25"
    assert decode_name("50%25 %2e %41") == "50% . %41"  # only the two escapes are decoded
    # Names the store refuses cannot reach outside their directory either.
    assert encode_name("../../etc/passwd") == "%2E.%2F..%2Fetc%2Fpasswd"
    assert encode_name("a\0b") == "a%00b"


def test_long_names_are_cut_with_a_hash_and_stay_distinct() -> None:
    first = "ä" * (MAX_NAME_BYTES // 2)
    second = first[:-1] + "ö"
    encoded = [encode_name(first, suffix=".mbox", reserve=5), encode_name(second, reserve=5)]
    assert all(len(e.encode()) <= MAX_FILE_NAME_BYTES - 5 for e in encoded)
    assert encoded[0] != encoded[1]
    assert fit_name("short") == "short"
    dotted = fit_name("." + ".".join(["x" * 200, "y" * 200]))
    assert len(dotted.encode()) <= MAX_FILE_NAME_BYTES and dotted.startswith(".")
