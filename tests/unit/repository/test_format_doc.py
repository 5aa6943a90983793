"""docs/repository-format.md against the code: byte tables, constants, magic numbers, JSON fields and
the example tree, so that the document and the format cannot drift apart."""

from __future__ import annotations

import ast
import dataclasses
import re
import sqlite3
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import pytest

from cps.capture import ProtectOptions, Protector
from cps.repository import (
    Chain,
    DatabaseInfo,
    DrillRecord,
    ProtectorStatus,
    PrunedRange,
    RecoveryPoint,
    Repository,
    codec,
    crypto,
    format,
    model,
    naming,
    packs,
)
from cps.repository.format import read_file
from cps.repository.standby_record import StandbyRecord

DOC = Path(__file__).resolve().parents[3] / "docs" / "repository-format.md"
LAYOUT_COLUMNS = ["Offset", "Size", "Type", "Endianness", "Meaning"]
STRUCT_MODULES = (format, codec)
CONSTANT_MODULES = {"format.py": format, "codec.py": codec, "model.py": model, "crypto.py": crypto,
                    "packs.py": packs}
INT_TYPES = {"H": "u16", "I": "u32", "Q": "u64"}


@dataclass(frozen=True)
class Field:
    offset: int
    size: int
    type: str


def doc_text() -> str:
    return DOC.read_text(encoding="utf-8")


def marked_tables(marker: str) -> dict[str, list[list[str]]]:
    """The tables preceded by `<!-- marker: argument -->` (or `<!-- marker -->`), by argument."""
    tables: dict[str, list[list[str]]] = {}
    lines = doc_text().splitlines()
    pattern = re.compile(rf"<!-- {marker}(?::\s*(.*?))?\s*-->")
    for number, line in enumerate(lines):
        match = pattern.fullmatch(line.strip())
        if match:
            argument = match[1] or ""
            assert argument not in tables, f"two tables marked {marker} {argument}"
            tables[argument] = table_after(lines, number + 1)
    return tables


def table_after(lines: list[str], start: int) -> list[list[str]]:
    rows = []
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        cells = re.split(r"(?<!\\)\|", line.strip())[1:-1]
        rows.append([cell.strip().strip("`").strip() for cell in cells])
    assert len(rows) >= 2 and set(rows[1][0]) <= set("-:"), f"no table after line {start}"
    return [rows[0], *rows[2:]]


def struct_fields(names: str) -> list[Field]:
    """The fields of the named structs laid end to end, from their format strings."""
    fields: list[Field] = []
    offset = 0
    for name in names.split():
        shape = find_struct(name)
        assert shape.format.startswith("<"), f"{name} must be little-endian without padding"
        for count, code in re.findall(r"(\d*)([a-zA-Z])", shape.format[1:]):
            if code == "s":
                fields.append(Field(offset, int(count), "bytes"))
                offset += int(count)
                continue
            for _ in range(int(count or 1)):
                size = struct.calcsize("<" + code)
                fields.append(Field(offset, size, INT_TYPES[code]))
                offset += size
    return fields


def find_struct(name: str) -> struct.Struct:
    found = [getattr(m, name, None) for m in STRUCT_MODULES]
    shapes = [shape for shape in found if isinstance(shape, struct.Struct)]
    assert len(shapes) == 1, f"{name} is not one struct of format.py or codec.py"
    return shapes[0]


def format_structs() -> set[str]:
    return {name for module in STRUCT_MODULES for name, value in vars(module).items()
            if isinstance(value, struct.Struct)}


def documented_fields(rows: list[list[str]]) -> tuple[list[Field], list[list[str]]]:
    """Rows with numeric offset and size, and the variable-length rows after them."""
    header, *body = rows
    assert header == LAYOUT_COLUMNS
    fixed: list[Field] = []
    variable: list[list[str]] = []
    for row in body:
        offset, size, kind, endianness, _meaning = row
        if offset.isdigit() and size.isdigit():
            assert not variable, f"fixed row {row} after a variable-length one"
            fixed.append(Field(int(offset), int(size), kind))
            assert endianness == ("—" if kind == "bytes" else "little"), row
        else:
            variable.append(row)
    return fixed, variable


def test_every_byte_table_matches_its_structs() -> None:
    tables = marked_tables("layout")
    assert tables, "the document has no marked byte tables"
    for names, rows in tables.items():
        fixed, variable = documented_fields(rows)
        assert fixed == struct_fields(names), f"the table of {names} disagrees with the code"
        for row in variable:
            assert row[0].startswith(str(sum(f.size for f in fixed))), \
                f"variable part of {names} does not start after its fixed part: {row}"


def test_every_struct_of_the_format_is_documented() -> None:
    documented = {name for names in marked_tables("layout") for name in names.split()}
    assert documented == format_structs()


def test_container_sizes_stated_in_prose_match() -> None:
    text = doc_text()
    assert f"{format.HEADER.size}-byte header" in text
    assert f"{format.FOOTER.size}-byte footer" in text
    assert f"at least {format.HEADER.size + format.FOOTER.size} bytes" in text


def test_magic_table_matches_the_code() -> None:
    [rows] = marked_tables("magic").values()
    header, *body = rows
    assert header[:3] == ["Kind", "Magic (hex)", "Magic (text)"]
    documented = {kind: bytes.fromhex(hex_text) for kind, hex_text, *_ in body}
    assert documented == format.KIND_MAGIC
    for kind, _hex, text, *_ in body:
        assert text.replace("\\0", "\0").encode() == format.KIND_MAGIC[kind]


def assigned_names(module: ModuleType) -> set[str]:
    """Names a module assigns at its top level (not those it imports)."""
    tree = ast.parse(Path(str(module.__file__)).read_text(encoding="utf-8"))
    targets = [t for node in tree.body if isinstance(node, ast.Assign) for t in node.targets]
    names = {t.id for t in targets if isinstance(t, ast.Name)}
    return names | {e.id for t in targets if isinstance(t, ast.Tuple) for e in t.elts
                    if isinstance(e, ast.Name)}


def module_constants() -> dict[tuple[str, str], int]:
    return {(file, name): getattr(module, name) for file, module in CONSTANT_MODULES.items()
            for name in assigned_names(module)
            if re.fullmatch(r"[A-Z][A-Z0-9_]*", name) and type(getattr(module, name)) is int}


def test_constants_table_lists_every_constant_with_its_value() -> None:
    [rows] = marked_tables("constants").values()
    header, *body = rows
    assert header[:3] == ["Constant", "Value", "Module"]
    documented = {(module, name): int(value) for name, value, module, *_ in body}
    assert documented == module_constants()


def json_fields(kind: str) -> set[str]:
    rows = marked_tables("json")[kind]
    assert rows[0][:2] == ["Field", "Type"]
    return {row[0] for row in rows[1:]}


@pytest.mark.parametrize("kind, record", [("database", DatabaseInfo), ("chain", Chain),
                                          ("point", RecoveryPoint), ("pruned", PrunedRange),
                                          ("standby", StandbyRecord),
                                          ("drill", DrillRecord)])
def test_json_fields_of_records_match_the_model(kind: str, record: type) -> None:
    assert json_fields(kind) == {f.name for f in dataclasses.fields(record)}


def test_json_fields_of_config_and_key_match_what_init_writes(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    Repository.init(root, passphrase="doc test")
    for kind in ("config", "key"):
        record = read_file(root / kind, kind).record(0, crypto.sealing(0, None))
        assert json_fields(kind) == set(codec.decode_json(record, kind))


def test_json_fields_of_status_match_what_the_protector_writes(tmp_path: Path) -> None:
    db = tmp_path / "small.db"
    connection = sqlite3.connect(db)
    connection.execute("PRAGMA journal_mode = WAL")
    connection.execute("CREATE TABLE t (x)")
    connection.commit()
    connection.close()  # this process holds no connection while the protector runs in it
    repo = Repository.init(tmp_path / "repo")
    protector = Protector(db, repo, "small", ProtectOptions(recovery_point_every=None))
    protector.start()
    protector.finish()
    written = codec.decode_json(next(repo._records("databases/small/status", "status")), "status")
    assert json_fields("status") == set(written)
    assert set(written) == {f.name for f in dataclasses.fields(ProtectorStatus)}


def test_every_documented_json_kind_exists() -> None:
    assert set(marked_tables("json")) <= set(format.KIND_MAGIC)


def layout_tree() -> list[str]:
    text = doc_text()
    section = text[text.index("## Layout"):]
    block = section[section.index("```\n") + 4:]
    return [re.sub(r"^[│├└─\s]+", "", line) for line in block[: block.index("```")].splitlines()]


def full_name_round_trips(name: str) -> bool:
    ref = naming.parse_full(1, name)
    return ref is not None and naming.format_full(ref) == name


def segment_name_round_trips(name: str) -> bool:
    ref = naming.parse_segment(1, name)
    return ref is not None and naming.format_segment(ref) == name


def test_layout_tree_names_parse_as_the_code_builds_them() -> None:
    names = layout_tree()
    parsed: dict[str, Callable[[str], bool]] = {
        ".full": full_name_round_trips,
        ".seg": segment_name_round_trips,
        ".pack": lambda n: naming.parse_pack(n) is not None,
        ".point": lambda n: re.fullmatch(r"[0-9a-f]{16}-[0-9a-f]{16}\.point", n) is not None,
    }
    checked = 0
    for name in names:
        for suffix, parses in parsed.items():
            if name.endswith(suffix):
                assert parses(name), f"{name} in the layout tree is not a name the code builds"
                checked += 1
    assert checked >= 4
    assert {"config", "chain", "database", "status"} <= set(names)
    assert any(naming.parse_chain_dir(name) is not None for name in names)
