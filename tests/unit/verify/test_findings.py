"""Findings: every kind documented, places in words, remedies with the names filled in."""

from __future__ import annotations

import re
from pathlib import Path

from cps.verify import KINDS, Finding, Place

ROOT = Path(__file__).resolve().parents[3]


def test_every_kind_is_in_the_verify_document_with_its_layer() -> None:
    rows = dict(re.findall(r"^\| `([a-z-]+)` \| (physical|logical) \|",
                           (ROOT / "docs" / "verify.md").read_text(), re.MULTILINE))
    assert rows == {kind: spec.layer for kind, spec in KINDS.items()}


def test_a_kind_either_has_a_repair_or_a_remedy() -> None:
    assert [kind for kind, spec in KINDS.items() if bool(spec.repair) == bool(spec.remedy)] == []


def test_a_place_in_words() -> None:
    message = Place(mailbox_id=2, mailbox="bob@example.com", folder_id=9, folder="Projects/2026",
                    message_id=41, uid=7, body_id=30)
    assert str(message) == "bob@example.com/Projects/2026 UID 7 (message 41)"
    assert str(Place(folder_id=9, folder="…/2026", mailbox_id=4)) == "mailbox 4/…/2026"
    assert str(Place(body_id=30)) == "body 30"
    assert str(Place(table="body_raw")) == "table body_raw"
    assert str(Place()) == "the database"


def test_a_remedy_names_the_message_quoted_for_a_shell() -> None:
    finding = Finding("missing-body", "gone", Place(
        mailbox_id=1, mailbox="alice@example.com", folder_id=3, folder="Sent Items",
        message_id=5, uid=12, header_id="<a b@example.org>", body_id=8))
    remedy = finding.remedy(Path("/srv/mail 01.db"))
    assert ("cps recover REPO --at TIME --mailbox alice@example.com --folder 'Sent Items' "
            "--message '<a b@example.org>' --into '/srv/mail 01.db'") in remedy
    without_header = Finding("missing-body", "gone", Place(folder="Inbox", uid=12))
    assert "--message 12 " in without_header.remedy(Path("m.db"))


def test_the_same_problem_found_again_has_the_same_key_whatever_its_wording() -> None:
    place = Place(folder_id=3)
    assert Finding("uid-not-below-uidnext", "UIDNEXT is 1", place).key == Finding(
        "uid-not-below-uidnext", "UIDNEXT is 2", place).key
