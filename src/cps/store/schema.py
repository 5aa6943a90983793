"""The mail database schema: one SQLite file per mail database, in WAL mode.

`docs/store.md` explains each table. Raw message bytes live once per distinct content in
`body_raw`, keyed through `bodies.sha256` (single-instance storage); `messages` rows place a body in a
folder with an IMAP UID, flags and an internal date. The full-text index `body_text` is derived from the
raw bytes and could be rebuilt from them.

Changing a table here changes the on-disk format of every mail database: bump SCHEMA_VERSION and add
a migration.
"""

from __future__ import annotations

# 'CPSm' in ASCII: `PRAGMA application_id` of every CPS mail database, so `file` and CPS can tell one.
APPLICATION_ID = 0x4350536D
SCHEMA_VERSION = 2  # 2: cps_commit_clock

# IMAP system flags, stored as a bitmask in messages.flags.
SYSTEM_FLAGS: dict[str, int] = {
    "\\Seen": 1,
    "\\Answered": 2,
    "\\Flagged": 4,
    "\\Deleted": 8,
    "\\Draft": 16,
}

# Folders every mailbox is created with, as (name, role). Roles follow RFC 6154 special-use names.
STANDARD_FOLDERS: tuple[tuple[str, str], ...] = (
    ("Inbox", "inbox"),
    ("Sent Items", "sent"),
    ("Drafts", "drafts"),
    ("Deleted Items", "trash"),
    ("Junk Email", "junk"),
)

# The commit clock: one row, set to the time in microseconds by every write transaction just
# before it commits (connection.transaction), and at least one more than before. Capture reads it from the
# transaction's pages, so a restore to a time gives exactly the transactions committed by then
# (docs/store.md, "The commit clock"). The tag makes the row's page recognisable by its content.
CLOCK_TAG = "cps-commit-clock"
CLOCK_DDL = f"""
CREATE TABLE cps_commit_clock (
    id           INTEGER PRIMARY KEY CHECK (id = 1),
    tag          TEXT NOT NULL CHECK (tag = '{CLOCK_TAG}'),
    committed_at INTEGER NOT NULL
);
INSERT INTO cps_commit_clock VALUES (1, '{CLOCK_TAG}', 0);
"""

DDL = CLOCK_DDL + """
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;

CREATE TABLE mailboxes (
    id           INTEGER PRIMARY KEY,
    address      TEXT NOT NULL,
    display_name TEXT NOT NULL DEFAULT '',
    created_at   INTEGER NOT NULL,
    deleted_at   INTEGER
);
CREATE UNIQUE INDEX mailboxes_live_address ON mailboxes(address) WHERE deleted_at IS NULL;

CREATE TABLE folders (
    id          INTEGER PRIMARY KEY,
    mailbox_id  INTEGER NOT NULL REFERENCES mailboxes(id),
    parent_id   INTEGER REFERENCES folders(id),
    name        TEXT NOT NULL,
    role        TEXT,
    uidvalidity INTEGER NOT NULL,
    uidnext     INTEGER NOT NULL DEFAULT 1,
    created_at  INTEGER NOT NULL
);
CREATE UNIQUE INDEX folders_sibling_name ON folders(mailbox_id, ifnull(parent_id, 0), name);
CREATE UNIQUE INDEX folders_role ON folders(mailbox_id, role) WHERE role IS NOT NULL;

CREATE TABLE bodies (
    id              INTEGER PRIMARY KEY,
    sha256          BLOB NOT NULL UNIQUE,
    size            INTEGER NOT NULL,
    message_id      TEXT NOT NULL,
    subject         TEXT NOT NULL,
    from_addr       TEXT NOT NULL,
    to_addr         TEXT NOT NULL,
    cc_addr         TEXT NOT NULL,
    sent_date       INTEGER,
    in_reply_to     TEXT NOT NULL,
    refs            TEXT NOT NULL,
    has_attachments INTEGER NOT NULL
);

CREATE TABLE body_raw (
    body_id INTEGER PRIMARY KEY REFERENCES bodies(id),
    raw     BLOB NOT NULL
);

CREATE TABLE attachments (
    body_id      INTEGER NOT NULL REFERENCES bodies(id),
    position     INTEGER NOT NULL,
    filename     TEXT NOT NULL,
    content_type TEXT NOT NULL,
    size         INTEGER NOT NULL,
    PRIMARY KEY (body_id, position)
) WITHOUT ROWID;

CREATE TABLE messages (
    id            INTEGER PRIMARY KEY,
    folder_id     INTEGER NOT NULL REFERENCES folders(id),
    uid           INTEGER NOT NULL,
    body_id       INTEGER NOT NULL REFERENCES bodies(id),
    internal_date INTEGER NOT NULL,
    flags         INTEGER NOT NULL DEFAULT 0,
    keywords      TEXT NOT NULL DEFAULT '',
    UNIQUE (folder_id, uid)
);
CREATE INDEX messages_body ON messages(body_id);

CREATE VIRTUAL TABLE body_text USING fts5(
    subject, from_addr, to_addr, text,
    tokenize = 'unicode61 remove_diacritics 2'
);

CREATE TABLE imports (
    folder_id  INTEGER NOT NULL REFERENCES folders(id),
    source     TEXT NOT NULL,
    message_id INTEGER,
    PRIMARY KEY (folder_id, source)
) WITHOUT ROWID;
"""

# Tables that hold mail content, in the order a canonical dump or a logical compare reads them.
CONTENT_TABLES = ("mailboxes", "folders", "bodies", "body_raw", "attachments", "messages")
