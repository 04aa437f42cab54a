"""Who may do what (issue 6): tokens with roles, loaded by `engage up --auth FILE`.

The file is TOML, one table per token holder:

    [tokens.shop]               # the holder's name: a NATS user name, and what logs show
    role = "producer"           # producer | reader | agent | auditor | admin
    token = "…"                 # at least 24 characters; `openssl rand -hex 24` makes one

- producer: POST /events, and NATS publish on `touchpoints.>` (user = name, password = token);
- reader: the dashboard and the read API, personal fields hidden;
- agent: the same, with the personal fields of profiles and cases readable;
- auditor: the read API, kept rejects, the audit export (also decrypted) and verification;
- admin: everything, NATS included.

Tokens are compared as SHA-256 digests, so a lookup takes the same time whatever the guess.
"""
from __future__ import annotations

import hashlib
import logging
import re
import secrets
import tomllib
from pathlib import Path
from typing import Literal, get_args

import msgspec

from engine.settings import UsageError

log = logging.getLogger("engage.access")

Role = Literal["producer", "reader", "agent", "auditor", "admin"]
ROLES: tuple[Role, ...] = get_args(Role)
MIN_TOKEN = 24
ENGINE_USER = "engage-engine"  # the engine's own NATS user, with a password made at each start
_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")

# What each role may do beyond the anonymous calls (/health, the OpenAPI document).
PUBLISH: frozenset[Role] = frozenset({"producer", "admin"})
READ: frozenset[Role] = frozenset({"reader", "agent", "auditor", "admin"})
PERSONAL: frozenset[Role] = frozenset({"agent", "admin"})
AUDIT: frozenset[Role] = frozenset({"auditor", "admin"})


class Holder(msgspec.Struct, frozen=True):
    name: str
    role: Role
    token: str


class _Entry(msgspec.Struct, forbid_unknown_fields=True):
    role: Role
    token: str


class _File(msgspec.Struct, forbid_unknown_fields=True):
    tokens: dict[str, _Entry]


class Access:
    """The token holders of one engine."""

    def __init__(self, holders: list[Holder]) -> None:
        self.holders = holders
        self._by_digest = {_digest(h.token): h for h in holders}
        self.engine_password = secrets.token_urlsafe(32)

    @classmethod
    def load(cls, path: Path) -> Access:
        try:
            raw = tomllib.loads(path.read_text(encoding="utf-8"))
            mode = path.stat().st_mode & 0o777
        except OSError as e:
            raise UsageError(f"--auth {path}: cannot read it: {e.strerror}") from e
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
            raise UsageError(f"--auth {path}: not TOML: {e}") from e
        try:
            parsed = msgspec.convert(raw, _File)
        except msgspec.ValidationError as e:
            raise UsageError(f"--auth {path}: {e} (each [tokens.NAME] has role = one of "
                             f"{', '.join(ROLES)}, and token = a secret of {MIN_TOKEN}+ characters)") from e
        holders: list[Holder] = []
        seen: set[str] = set()
        for name, entry in parsed.tokens.items():
            if not _NAME.fullmatch(name) or name == ENGINE_USER:
                raise UsageError(f"--auth {path}: tokens.{name}: a name is 1–64 of A-Z a-z 0-9 _ . - "
                                 f"(and not {ENGINE_USER})")
            if len(entry.token) < MIN_TOKEN:
                raise UsageError(f"--auth {path}: tokens.{name}.token: at least {MIN_TOKEN} characters "
                                 "(`openssl rand -hex 24` makes one)")
            if entry.token in seen:
                raise UsageError(f"--auth {path}: tokens.{name}.token: the same token is given twice")
            seen.add(entry.token)
            holders.append(Holder(name, entry.role, entry.token))
        if not holders:
            raise UsageError(f"--auth {path}: no [tokens.NAME] table: nobody could use the engine")
        if mode & 0o077:  # said once the file is right: a mistake in it stays one line
            log.warning("--auth %s is open to other users (mode %o): its tokens are secrets, chmod 600 it", path, mode)
        return cls(holders)

    def holder(self, token: str) -> Holder | None:
        return self._by_digest.get(_digest(token))

    def nats_authorization(self) -> list[str]:
        """The `authorization` block of nats-server.conf: the engine may do anything; producers and
        admins may publish touchpoints (and receive JetStream's acks on `_INBOX.>`, which is not
        where the engine's consumer receives the touchpoints: see jetstream.ENGINE_INBOX); nobody
        else may connect."""
        users = [f"    {{user: {_q(ENGINE_USER)}, password: {_q(self.engine_password)}}}"]
        for h in self.holders:
            if h.role in PUBLISH:
                users.append(f"    {{user: {_q(h.name)}, password: {_q(h.token)}, permissions: {{"
                             'publish: {allow: ["touchpoints.>"]}, subscribe: {allow: ["_INBOX.>"]}}}')
        return ["authorization {", "  users: [", *users, "  ]", "}"]


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8")).digest()


def _q(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
