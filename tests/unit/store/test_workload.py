"""The workload generator's parts: generated mail, the corpus index, the mix, the log and the model."""

from __future__ import annotations

import email
import email.policy
import json
import random
from pathlib import Path

import pytest

from cps.errors import UsageError
from cps.store import parse_message
from cps.store.names import check_folder_name
from cps.store.workload import OPERATION_MIX, Corpus, LogMismatch, OperationLog, replay
from cps.store.workload.operations import FOLDER_NAMES, KEYWORDS
from cps.store.workload.synthetic import MessageFactory


def compose_many(seed: int, count: int) -> list[bytes]:
    factory = MessageFactory(random.Random(seed))
    recipient_sets = [["user001@example.com"], ["user002@example.com", "user003@example.com"], None]
    return [
        factory.compose("user004@example.com" if n % 4 == 0 else None, recipient_sets[n % 3])
        for n in range(count)
    ]


def test_generated_mail_is_the_same_bytes_for_the_same_seed() -> None:
    assert compose_many(5, 50) == compose_many(5, 50)
    assert compose_many(5, 50) != compose_many(6, 50)


def test_generated_mail_is_well_formed_and_varied() -> None:
    messages = compose_many(11, 300)
    ids = set()
    attachments = replies = multi_recipient = non_ascii_subjects = 0
    for raw in messages:
        parsed = email.message_from_bytes(raw, policy=email.policy.default)
        assert parsed.defects == []
        assert all(line.endswith(b"\r") for line in raw.split(b"\n")[:-1])
        assert max(len(line) for line in raw.split(b"\r\n")) <= 998
        envelope = parse_message(raw).envelope
        assert envelope.defects == ()
        assert envelope.date is not None and envelope.from_ and envelope.to and envelope.subject
        assert envelope.text.count("\r\n\r\n") >= 2  # greeting, paragraphs, signature
        ids.add(envelope.message_id)
        attachments += bool(envelope.attachments)
        replies += bool(envelope.in_reply_to)
        multi_recipient += envelope.to.count("@") > 1
        non_ascii_subjects += not envelope.subject.isascii()
    assert len(ids) == len(messages)
    assert 15 <= attachments <= 60
    assert replies > 30 and multi_recipient > 50 and non_ascii_subjects > 10


def test_generated_dates_move_forward() -> None:
    dates = [parse_message(raw).envelope.date for raw in compose_many(2, 40)]
    assert all(d is not None for d in dates)
    assert dates == sorted(dates)  # type: ignore[type-var]


def test_the_mix_adds_up_and_deliveries_dominate() -> None:
    assert sum(OPERATION_MIX.values()) == pytest.approx(1.0)
    assert max(OPERATION_MIX, key=lambda kind: OPERATION_MIX[kind]) == "deliver"
    assert OPERATION_MIX["deliver"] == pytest.approx(0.45)


def test_stock_folder_names_and_keywords_are_storable_as_written() -> None:
    for name in FOLDER_NAMES:
        assert check_folder_name(name) == name
    assert any(not name.isascii() for name in FOLDER_NAMES)
    assert all(not keyword.startswith("\\") and " " not in keyword for keyword in KEYWORDS)


def test_corpus_index_takes_visible_non_empty_regular_files_in_sorted_order(tmp_path: Path) -> None:
    (tmp_path / "b").mkdir()
    (tmp_path / ".hidden").mkdir()
    (tmp_path / "b" / "2.eml").write_bytes(b"Subject: two\n\nbody\n")
    (tmp_path / "a.eml").write_bytes(b"Subject: a\n\nbody\n")
    (tmp_path / ".dotfile").write_bytes(b"Subject: hidden\n\n")
    (tmp_path / ".hidden" / "x.eml").write_bytes(b"Subject: hidden\n\n")
    (tmp_path / "empty.eml").write_bytes(b"")
    (tmp_path / "link.eml").symlink_to(tmp_path / "a.eml")
    corpus = Corpus.index(tmp_path)
    assert corpus.paths == ["a.eml", "b/2.eml"]


def test_corpus_hands_out_every_file_once_per_pass(tmp_path: Path) -> None:
    for n in range(7):
        (tmp_path / f"{n}.eml").write_bytes(f"Subject: {n}\n\n".encode())
    corpus = Corpus.index(tmp_path)
    rng = random.Random(1)
    first = [corpus.next_message(rng)[1] for _ in range(7)]
    second = [corpus.next_message(rng)[1] for _ in range(7)]
    assert sorted(first) == sorted(second) == corpus.paths
    raw, relative = corpus.next_message(rng)
    assert raw == (tmp_path / relative).read_bytes()


def test_an_empty_corpus_is_refused_with_a_hint(tmp_path: Path) -> None:
    (tmp_path / ".only-hidden").write_bytes(b"Subject: x\n\n")
    with pytest.raises(UsageError) as caught:
        Corpus.index(tmp_path)
    assert "no message files" in caught.value.message and caught.value.hint


def test_operation_log_writes_flushed_json_lines_and_never_overwrites(tmp_path: Path) -> None:
    path = tmp_path / "logs" / "ops.jsonl"
    log = OperationLog(path)
    log.write({"seq": 1, "op": "folder_create", "folder": ["Zürich"]})
    assert path.read_text(encoding="utf-8") == '{"seq":1,"op":"folder_create","folder":["Zürich"]}\n'
    log.close()
    with pytest.raises(UsageError):
        OperationLog(path)
    assert json.loads(path.read_text(encoding="utf-8"))["seq"] == 1


SETUP = {"seq": 1, "op": "mailbox_create", "committed_at": 1.0, "mailbox": "a@x", "mailbox_id": 1,
         "folders": [["Inbox"], ["Deleted Items"]]}


def deliver(seq: int, message_id: int, uid: int, sha: str) -> dict[str, object]:
    return {"seq": seq, "op": "deliver", "committed_at": float(seq), "mailbox": "a@x",
            "source": "generated", "sha256": sha, "size": 10, "flags": [],
            "message_ids": [message_id],
            "deliveries": [{"mailbox": "a@x", "folder": ["Inbox"], "uid": uid,
                            "message_id": message_id}]}


def folder_op(seq: int, op: str, **fields: object) -> dict[str, object]:
    return {"seq": seq, "op": op, "committed_at": float(seq), "mailbox": "a@x", **fields}


def test_replay_follows_renames_of_parents_into_messages_and_subfolders() -> None:
    records = [
        SETUP,
        folder_op(2, "folder_create", folder=["P"], folder_id=9, uidvalidity=1),
        folder_op(3, "folder_create", folder=["P", "Q"], folder_id=10, uidvalidity=2),
        deliver(4, 1, 1, "aa"),
        folder_op(5, "move", **{"from": ["Inbox"], "to": ["P", "Q"]}, message_ids=[1],
                  from_uids=[1], uids=[1], sha256=["aa"]),
        folder_op(6, "flag", folder=["P", "Q"], message_ids=[1], uids=[1], sha256=["aa"],
                  add=["\\Flagged", "$Label1"], remove=[]),
        folder_op(7, "folder_rename", **{"from": ["P"], "to": ["Inbox", "R"]}, folder_id=9),
        {"seq": 8, "op": "expunge", "mailbox": "a@x", "failed_at": 8.0, "error": "not-found",
         "message": "no message with id 1"},
    ]
    content = replay(records).content()
    assert content[("a@x", ("Inbox", "R", "Q"))] == {1: ("aa", frozenset({"\\Flagged", "$Label1"}))}
    assert ("a@x", ("P",)) not in content and content[("a@x", ("Inbox", "R"))] == {}
    assert replay(records, until=4.5).content()[("a@x", ("Inbox",))] == {1: ("aa", frozenset())}


def test_replay_refuses_a_log_that_contradicts_itself() -> None:
    wrong_uid = folder_op(3, "delete", **{"from": ["Inbox"], "to": ["Deleted Items"]},
                          message_ids=[1], from_uids=[2], uids=[1], sha256=["aa"])
    with pytest.raises(LogMismatch, match="record 3"):
        replay([SETUP, deliver(2, 1, 1, "aa"), wrong_uid])
    incomplete_delete = folder_op(4, "folder_delete", folder=["P"], folder_id=9, folders=[["P"]],
                                  message_ids=[], message_folders=[], uids=[], sha256=[])
    move = folder_op(3, "move", **{"from": ["Inbox"], "to": ["P"]}, message_ids=[1],
                     from_uids=[1], uids=[1], sha256=["aa"])
    create = folder_op(2, "folder_create", folder=["P"], folder_id=9, uidvalidity=1)
    with pytest.raises(LogMismatch, match="deleted messages"):
        replay([SETUP, create, deliver(2, 1, 1, "aa"), move, incomplete_delete])
