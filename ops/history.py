"""A profile's full history (SPEC §8 `history`): every event that belongs to it, oldest first, from
the read models, with personal fields readable unless erased.

For auditors and ops, not customers: internal events (`case.note_added`) are listed too. Whose an
event is comes from the read models (links are retroactive, erasure ends them, SPEC §3, §6); what
personal fields say comes from the log's keys, so an erased customer's fields read `null`.
"""
from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from commands.parsing import normalise_identity
from commands.touchpoints import PERSONAL_FIELDS
from engine.keys import decrypt_text, key_id_of
from engine.log import EVENTS_TABLE, read_only_uri
from engine.settings import REPLAY_MARKER, UsageError
from ops.audit import LOG_FILE, open_log

READ_FILE = "read.sqlite"


class History(msgspec.Struct, frozen=True):
    key: str  # the profile key, normalised
    erased_at: int | None  # the position of `customer.erased` when the key is an erased customer
    events: list[dict[str, Any]]  # oldest first: (occurred_at, id)
    position: int  # how far the read models have read the log ...
    head: int  # ... and how far the log goes: the last events may be missing while position < head
    replay: bool  # a directory `engage replay` built: it keeps no keys, every personal field is null


_record = msgspec.json.Decoder(dict[str, Any])


def history(data: Path, key: str) -> History:
    """The profile's events. An erased customer's are listed with their personal fields `null`;
    an identity linked to a customer, or a key never seen, is a UsageError naming what to ask for.
    The key is taken as given first (as GET /customers lists it: `~twitter:@bob` is the handle
    `@@bob`), then normalised (`~Twitter:@Alice` is `~twitter:alice`), as the read API does."""
    log = open_log(data)
    try:
        read_path = data / READ_FILE
        if not read_path.is_file():
            raise UsageError(f"no read models at {read_path}: run engage rebuild --data {data}")
        con = sqlite3.connect(read_only_uri(read_path), uri=True)
        try:
            found = _origins(con, key)
            if found is None and normalise_key(key) != key:
                key = normalise_key(key)
                found = _origins(con, key)
            if found is None:
                raise UsageError(f"no profile {key!r} in {data}: give a customer key (c-42) or an identity's "
                                 "(~twitter:alice), as GET /customers lists them")
            erased_at, oids = found
            marks = ",".join("?" * len(oids))
            con.execute("ATTACH DATABASE ? AS log", (read_only_uri(data / LOG_FILE),))
            rows = con.execute(f"SELECT l.state FROM events e JOIN log.{EVENTS_TABLE} l ON l.rowid = e.position "
                               f"WHERE e.oid IN ({marks}) ORDER BY e.occurred_at, e.id", oids).fetchall()
            row = con.execute("SELECT position FROM tracking WHERE name='read-models'").fetchone()
        except sqlite3.Error as e:
            raise UsageError(f"cannot read the read models at {read_path}: {e}; "
                             f"run engage rebuild --data {data}") from e
        finally:
            con.close()
        keys = _KeyCache(log.key_lookup())
        return History(key=key, erased_at=erased_at, events=[_item(bytes(r[0]), keys) for r in rows],
                       position=int(row[0]) if row else 0, head=log.head.position,
                       replay=(data / REPLAY_MARKER).exists())
    finally:
        log.close()


def normalise_key(key: str) -> str:
    """`~Twitter:@Alice` is `~twitter:alice` (SPEC §1, §3); a customer key is as sent."""
    if key.startswith("~"):
        channel, sep, handle = key[1:].partition(":")
        if sep:
            channel, handle = normalise_identity(channel, handle)
            return f"~{channel}:{handle}"
    return key


def _origins(con: sqlite3.Connection, key: str) -> tuple[int | None, list[int]] | None:
    """(erased at, the origins whose events are the profile's), or None when the key names none."""
    erased = con.execute("SELECT position FROM erased WHERE customer=?", (key,)).fetchone()
    if erased is not None:
        # Erasure cleared the owner of its origins (projections/projector.py): they are the customer's
        # own and those of the identities linked to it in the epoch the erasure ended.
        oids = [oid for (oid,) in con.execute(
            "SELECT oid FROM origins WHERE customer=? UNION "
            "SELECT o.oid FROM origins o JOIN links l "
            "ON l.channel = o.channel AND l.handle = o.handle AND l.epoch = o.epoch WHERE l.customer=?",
            (key, key))]
        return int(erased[0]), oids
    if con.execute("SELECT 1 FROM profiles WHERE key=?", (key,)).fetchone() is not None:
        return None, [oid for (oid,) in con.execute("SELECT oid FROM origins WHERE owner=?", (key,))]
    if key.startswith("~"):
        channel, _, handle = key[1:].partition(":")
        row = con.execute("SELECT owner FROM origins WHERE channel=? AND handle=? ORDER BY epoch DESC LIMIT 1",
                          (channel, handle)).fetchone()
        if row is not None and row[0] is not None and not row[0].startswith("~"):
            raise UsageError(f"{key} is linked to customer {row[0]}: its events are in engage history {row[0]}")
    return None


class _KeyCache:
    """One key lookup per key id, not per field: a history reads many fields under few keys."""

    def __init__(self, lookup: Callable[[str], AESGCM | None]) -> None:
        self._lookup = lookup
        self._keys: dict[str, AESGCM | None] = {}

    def read(self, stored: str) -> str | None:
        key_id = key_id_of(stored)
        if key_id is None:
            return None
        if key_id not in self._keys:
            self._keys[key_id] = self._lookup(key_id)
        aead = self._keys[key_id]
        return None if aead is None else decrypt_text(aead, stored)


def _item(line: bytes, keys: _KeyCache) -> dict[str, Any]:
    """The event as the log holds it, its position and recording time first, personal fields
    readable (`null` once their key is destroyed)."""
    record = _record.decode(line)
    event = record["event"]
    data = dict(event.get("data") or {})
    for name in PERSONAL_FIELDS.intersection(data):
        data[name] = keys.read(data[name])
    return {"position": record["position"], "recorded_at": record["recorded_at"],
            **{k: v for k, v in event.items() if k != "data"}, "data": data}
