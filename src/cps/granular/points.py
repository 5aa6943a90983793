"""Naming the point in time to look at: from command-line style choices, or from one word.

A point is the latest captured transaction, a transaction number, a recovery point by name, or a
time (the last transaction captured at or before it), exactly the targets `cps restore` takes. The
one-word form is what `cps diff --from/--to` and the server's `point` read: `latest`, `txn:N`,
`point:NAME`, `at:TIME` or a bare time, TIME as `cps.restore.parse_time` reads it.
"""

from __future__ import annotations

from ..errors import UsageError
from ..restore import Target, parse_time

_SPEC_HINT = ("Write latest, txn:N, point:NAME, or a time (at:TIME, or TIME alone) such as "
              "2026-11-22T18:35:01Z, '2026-11-22 18:35' or '15m ago'.")


def point_target(*, latest: bool = False, at: str | None = None, recovery_point: str | None = None,
                 txn: int | None = None) -> Target:
    """The one target among the given choices; exactly one must be given."""
    given = [target for target in (
        Target("latest") if latest else None,
        Target("time", parse_time(at)) if at is not None else None,
        Target("point", recovery_point) if recovery_point is not None else None,
        Target("txn", txn) if txn is not None else None,
    ) if target is not None]
    if len(given) != 1:
        raise UsageError("give exactly one of --latest, --at, --recovery-point, --txn",
                         hint="For example --recovery-point 'before upgrade' or --at '1h ago'.")
    return given[0]


def parse_point(text: str) -> Target:
    """`latest`, `txn:N`, `point:NAME`, `at:TIME` or a time, as a restore target."""
    spec = text.strip()
    kind, colon, value = spec.partition(":")
    if spec.lower() == "latest":
        return Target("latest")
    if colon and kind.lower() == "point":
        if not value:
            raise UsageError(f"no recovery point name in {text!r}", hint=_SPEC_HINT)
        return Target("point", value)
    if colon and kind.lower() == "txn":
        if not value.strip().isdecimal():  # isdigit() admits "²", which int() refuses
            raise UsageError(f"cannot read {text!r} as a transaction number", hint=_SPEC_HINT)
        return Target("txn", int(value))
    if colon and kind.lower() == "at":
        spec = value
    try:
        return Target("time", parse_time(spec))
    except UsageError:
        raise UsageError(f"cannot read {text!r} as a point in time", hint=_SPEC_HINT) from None


def point_label(target: Target, txn: int) -> str:
    """How the point `target` names, at transaction `txn`, is called for people and in the
    folders recovered from it: the recovery point's name, or 'txn N'."""
    return str(target.value) if target.kind == "point" else f"txn {txn}"
