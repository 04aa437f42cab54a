"""`engage`: the one command-line tool (SPEC §8, §9).

Exit codes: 0 success; 1 the thing checked is not right (`verify` found a break); 2 a user mistake
(bad flag, missing or unwritable directory, port in use), printed as one line saying what to do.
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import re
import sys
from collections import Counter
from collections.abc import Callable, Coroutine, Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, NoReturn

import msgspec

from commands.instants import parse_instant
from engine.settings import (
    COMMIT_TIMEOUT,
    DEFAULT_BATCH,
    REPLAY_MARKER,
    Damaged,
    Settings,
    UsageError,
    causes,
    parse_listen,
    parse_nats_url,
    parse_port,
    without_credentials,
)

if TYPE_CHECKING:
    from rich.text import Text

    from ops.history import History

EPILOG = """examples:
  engage up                                   run everything locally (data in ./engage-data)
  engage emit events.ndjson --http http://127.0.0.1:8080
  engage emit - --nats nats://127.0.0.1:4222 < events.ndjson
  engage export --data ./engage-data -o log.jsonl
  engage verify log.jsonl                      exit 0 when the chain is intact
  engage verify --data ./engage-data
  engage rebuild --data ./engage-data          with the engine stopped
  engage replay --data ./engage-data --to-position 5000 --into ./at-5000
  engage up --data ./at-5000 --read-only      serve a replay
  engage history c-42 --data ./engage-data
  engage demo --rate 50                         realistic traffic for the dashboard

exit codes:
  0    done (`up` stopped by Ctrl-C or SIGTERM is done: it drains and stops cleanly)
  1    the thing checked is not right (verify found a break, a file is damaged), `up` stopped on an error,
       or `emit` could not send some lines (over the NATS server's max_payload)
  2    a user mistake (bad flag, missing or unwritable directory, port in use): one line says what to do
  130  interrupted (Ctrl-C) before it was done

logs go to stderr: readable lines on a terminal, one JSON object per line otherwise."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(2, f"engage: {message} (see `{self.prog} --help`)\n")


def _default_data() -> str:
    return _env("ENGAGE_DATA") or "./engage-data"


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="engage", description="Event-sourced engagement engine for Social CRM.",
                     epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    examples = argparse.RawDescriptionHelpFormatter

    up = sub.add_parser("up", help="run the log, NATS ingest and the HTTP API locally",
                        description="Run everything on this machine with embedded defaults (SPEC §9). "
                                    "SIGINT/SIGTERM stop it cleanly; a restart carries on where it stopped.",
                        formatter_class=examples, epilog=(
                            "examples:\n"
                            "  engage up\n"
                            "  engage up --data /var/lib/engage --listen 127.0.0.1:0 --nats-port 0\n"
                            "  ENGAGE_NATS=nats://10.0.0.5:4222 engage up    (an existing NATS server)"))
    up.add_argument("--data", default=_default_data(), help="data directory [ENGAGE_DATA] (default ./engage-data)")
    up.add_argument("--listen", default=_env("ENGAGE_LISTEN", "127.0.0.1:8080"),
                    help="HTTP API HOST:PORT [ENGAGE_LISTEN] (default 127.0.0.1:8080; port 0 picks one)")
    up.add_argument("--nats-port", default=_env("ENGAGE_NATS_PORT", "4222"),
                    help="port of the nats-server `up` starts [ENGAGE_NATS_PORT] (default 4222)")
    up.add_argument("--nats", default=_env("ENGAGE_NATS"),
                    help="use this existing NATS server (URL) instead of starting one [ENGAGE_NATS]")
    up.add_argument("--auth", default=_env("ENGAGE_AUTH"), metavar="FILE",
                    help="tokens and roles (TOML, see README); required to listen beyond loopback [ENGAGE_AUTH]")
    up.add_argument("--read-only", action="store_true",
                    help="serve the read API over the directory as it is (a replay): no ingest, no NATS")
    up.add_argument("--ack-wait", type=float, default=30.0, help=argparse.SUPPRESS)
    up.add_argument("--commit-timeout", type=float, default=COMMIT_TIMEOUT, help=argparse.SUPPRESS)
    up.add_argument("--batch", type=int, default=DEFAULT_BATCH, help=argparse.SUPPRESS)

    emit = sub.add_parser("emit", help="publish a file of events (NDJSON) over HTTP or NATS",
                          description="Send NDJSON events as a producer would and print each outcome's count. "
                                      "Over NATS the engine decides later: see GET /rejects.",
                          formatter_class=examples, epilog=(
                              "examples:\n"
                              "  engage emit events.ndjson --http http://127.0.0.1:8080\n"
                              "  engage emit - --nats nats://127.0.0.1:4222 < events.ndjson\n\n"
                              "exit codes: 0 sent, 1 some lines were not sent (over the NATS server's max_payload:\n"
                              "            send them with --http), 2 a usage error, or the destination refused or\n"
                              "            did not answer"))
    emit.add_argument("file", help="NDJSON file, or - for standard input")
    to = emit.add_mutually_exclusive_group(required=True)
    to.add_argument("--http", metavar="URL", help="the engine's HTTP address, e.g. http://127.0.0.1:8080 "
                                                  "(emit posts to its /events)")
    to.add_argument("--nats", metavar="URL", help="a NATS server, e.g. nats://127.0.0.1:4222")
    emit.add_argument("--subject", help="over NATS: the subject, under touchpoints. and without wildcards "
                                        "(default touchpoints.emit)")
    emit.add_argument("--token", default=_env("ENGAGE_TOKEN"),
                      help="a producer token for an engine run with --auth [ENGAGE_TOKEN]; over NATS with its name "
                           "(--token-name), or both in the URL: nats://NAME:TOKEN@host:4222 (which ps shows)")
    emit.add_argument("--token-name", default=_env("ENGAGE_TOKEN_NAME"), metavar="NAME",
                      help="over NATS: the token's name, [tokens.NAME] in the engine's auth file "
                           "[ENGAGE_TOKEN_NAME]")

    verify = sub.add_parser("verify", help="verify the hash chain of a data directory or an export",
                            description="Exit 0 when the chain is intact; else exit 1 naming the first bad position.",
                            formatter_class=examples, epilog=(
                                "examples:\n"
                                "  engage verify log.jsonl\n"
                                "  engage verify --data ./engage-data"))
    verify.add_argument("export", nargs="?", type=Path,
                        help="an export (JSON Lines; - reads standard input); omit to check --data")
    verify.add_argument("--data", help="data directory [ENGAGE_DATA]")
    verify.add_argument("--head", metavar="HASH", type=_head_hash,
                        help="also require the record with this hash (the log's head_hash in GET /health, or "
                             "the head a verify printed): an export cut short before it fails")

    export = sub.add_parser("export", help="export the log as JSON Lines (SPEC §8)",
                            description="One record per line in position order; each line verifies on its own "
                                        "chain (SPEC §8).",
                            formatter_class=examples, epilog=(
                                "examples:\n"
                                "  engage export --data ./engage-data -o log.jsonl\n"
                                "  engage export --decrypt | jq .personal"))
    export.add_argument("--data", default=_default_data(), help="data directory [ENGAGE_DATA]")
    export.add_argument("-o", "--output", type=Path, help="file to write (default: standard output)")
    export.add_argument("--decrypt", action="store_true",
                        help="add readable personal fields under `personal` (outside the hash)")

    rebuild = sub.add_parser("rebuild", help="drop and rebuild the live read models from the log",
                             description="Fold the whole log into fresh read models beside the live ones, then "
                                         "replace them in one rename. Stop the engine first: a running one is "
                                         "refused. A rebuild that was killed carries on where it stopped.",
                             formatter_class=examples, epilog=(
                                 "examples:\n"
                                 "  engage rebuild --data ./engage-data\n\n"
                                 "exit codes: 0 rebuilt, 2 no log there or an engine is running"))
    rebuild.add_argument("--data", default=_default_data(), help="data directory [ENGAGE_DATA]")

    replay = sub.add_parser("replay", help="build the read models of an earlier point into another directory",
                            description="Fold the log up to a position (inclusive) or up to the last record "
                                        "recorded at or before an instant, into a new directory that also holds "
                                        "the log as it stood then: `engage up --read-only`, `verify` and `export` "
                                        "work on it, and `engage up` without --read-only refuses it. It keeps no "
                                        "keys: personal fields stay ciphertext there, so a later erasure cannot "
                                        "miss this copy (SPEC §6).",
                            formatter_class=examples, epilog=(
                                "examples:\n"
                                "  engage replay --data ./engage-data --to-position 5000 --into ./at-5000\n"
                                "  engage replay --to-time 2026-10-01T00:00:00Z --into ./october\n"
                                "  engage up --data ./at-5000 --read-only --listen 127.0.0.1:8081\n\n"
                                "exit codes: 0 built, 2 a bad position or time, or --into not new or empty"))
    replay.add_argument("--data", default=_default_data(), help="data directory [ENGAGE_DATA]")
    point = replay.add_mutually_exclusive_group(required=True)
    point.add_argument("--to-position", type=int, metavar="N", help="the last position to include")
    point.add_argument("--to-time", metavar="T",
                       help="RFC 3339 instant with offset: include the records recorded at or before it")
    replay.add_argument("--into", type=Path, required=True, metavar="DIR2",
                        help="a new or empty directory to build the replay in")

    history = sub.add_parser("history", help="print a profile's full history",
                             description="Every event of a profile (a customer key, or ~channel:handle), oldest "
                                         "first, personal fields readable unless erased (then null). A table on "
                                         "a terminal; JSON Lines, one event per line, otherwise or with --json.",
                             formatter_class=examples, epilog=(
                                 "examples:\n"
                                 "  engage history c-42 --data ./engage-data\n"
                                 "  engage history '~twitter:alice' --json | jq .type\n\n"
                                 "exit codes: 0 listed (an erased customer too: its personal fields are null),\n"
                                 "            2 no such profile, or an identity now linked to a customer (named)"))
    history.add_argument("key", metavar="KEY", help="customer key, or ~channel:handle for an anonymous profile")
    history.add_argument("--data", default=_default_data(), help="data directory [ENGAGE_DATA]")
    history.add_argument("--json", action="store_true", help="JSON Lines even on a terminal")

    demo = sub.add_parser("demo", help="send realistic demo traffic through NATS so the dashboard moves",
                          description="Backfill the past 60 days of a small brand community, then publish live "
                                      "touchpoints at --rate: customers climbing the ladder, anonymous identities "
                                      "linked later, cases with agents, escalations and SLA breaches, ideas, "
                                      "accepted answers, referrals, NPS answers and a few malformed events. "
                                      "Ctrl-C stops it.",
                          formatter_class=examples, epilog=(
                              "examples:\n"
                              "  engage demo                                  against the local `engage up`\n"
                              "  engage demo --rate 100 --duration 60\n"
                              "  engage demo --history 0 --nats nats://10.0.0.5:4222"))
    demo.add_argument("--nats", default=_env("ENGAGE_NATS", "nats://127.0.0.1:4222"),
                      help="NATS server of the engine [ENGAGE_NATS] (default nats://127.0.0.1:4222)")
    demo.add_argument("--rate", type=float, default=20.0, help="live events per second (default 20)")
    demo.add_argument("--duration", type=float, metavar="SECONDS", help="stop after this long (default: Ctrl-C)")
    demo.add_argument("--history", type=int, default=5000, metavar="N",
                      help="past events to backfill first (default 5000; 0 for none)")
    demo.add_argument("--seed", type=int, default=7, help="random seed (default 7)")
    return parser


class FromEnvironment(str):
    """A flag's value taken from its ENGAGE_* variable: errors about it name the variable, which is
    what the user set (argparse keeps a default as it is given)."""

    variable: str


def _env(variable: str, default: str | None = None) -> str | None:
    value = os.environ.get(variable)
    if value is None:
        return default
    marked = FromEnvironment(value)
    marked.variable = variable
    return marked


def _named(value: object, flag: str) -> str:
    """How an error names where a value came from: the flag, or the variable that set it."""
    return f"{value.variable} ({flag})" if isinstance(value, FromEnvironment) else flag


def main(argv: Sequence[str] | None = None) -> None:
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:  # named first: `engage --bogus` is about the flag, not the missing command
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    if args.command is None:
        parser.error(f"a COMMAND is required: {', '.join(COMMANDS)}")
    _configure_logging()
    # The data directory holds the keys to every personal field (SPEC §6), exports may hold the
    # fields themselves: what engage creates is its owner's alone.
    os.umask(0o077)
    try:
        code = COMMANDS[args.command](args)
    except UsageError as e:  # its words may quote data (a key a producer chose): no control sequences
        print(f"engage {args.command}: {_printable(str(e))}", file=sys.stderr)
        code = 2
    except Damaged as e:  # the file, not the user: what is checked is not right
        print(f"engage {args.command}: {_printable(str(e))}", file=sys.stderr)
        code = 1
    except PermissionError as e:
        denied = (e.strerror or "permission denied").lower()
        print(f"engage {args.command}: {denied}: {e.filename}: run it as the user that owns the data directory, "
              "or give that user access", file=sys.stderr)
        code = 2
    except KeyboardInterrupt:
        code = 130
    except BrokenPipeError:  # `engage export | head`: the reader left, nothing is wrong
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        code = 0
    except Exception as e:  # last: the clauses above come first
        if not _disk_full(e):
            raise
        print(f"engage {args.command}: the disk is full ({e}): free some space and run it again (it carries on "
              "or starts over; nothing half-written is taken for whole)", file=sys.stderr)
        code = 1
    sys.exit(code)


def _disk_full(error: BaseException) -> bool:
    """Whether a full disk (or quota) is the cause: SQLite's SQLITE_FULL or the system's ENOSPC."""
    import errno
    import sqlite3

    return any((isinstance(cause, OSError) and cause.errno in (errno.ENOSPC, errno.EDQUOT))
               or (isinstance(cause, sqlite3.Error) and getattr(cause, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL)
               for cause in causes(error))


def _configure_logging() -> None:
    from engine import logs

    logs.configure(sys.stderr)


def cmd_up(args: argparse.Namespace) -> int:
    host, port = parse_listen(args.listen, _named(args.listen, "--listen"))
    settings = Settings(
        data=Path(args.data).resolve(), listen_host=host, listen_port=port,
        nats_port=parse_port(str(args.nats_port), _named(args.nats_port, "--nats-port")),
        nats_url=None if args.nats is None else parse_nats_url(args.nats, _named(args.nats, "--nats")),
        ack_wait=args.ack_wait, commit_timeout=args.commit_timeout, batch=args.batch,
        fault=os.environ.get("ENGAGE_FAULT"), read_only=args.read_only,
        auth=None if args.auth is None else Path(args.auth),
    )
    if host not in ("127.0.0.1", "localhost", "::1") and settings.auth is None:
        raise UsageError(f"{_named(args.listen, '--listen')} {args.listen}: without --auth FILE (tokens and roles) "
                         "the engine listens on loopback only")
    if settings.auth is not None:
        from engine.access import Access

        Access.load(settings.auth)  # a broken file is one clear line now, before anything starts
    from engine.jetstream import StreamMismatch
    from engine.natsserver import NatsServerError
    from engine.runtime import run

    try:
        asyncio.run(run(settings, announce=_announce))
    except (UsageError, Damaged, PermissionError):
        raise  # one line from main()
    except (NatsServerError, StreamMismatch) as e:
        raise UsageError(str(e)) from e
    except Exception:
        # Not a user mistake: something broke while running. The traceback goes to the log.
        logging.getLogger("engage").exception("engage up stopped on an error")
        return 1
    return 0


def _announce(line: str) -> None:
    """What `up` prints. A reader of its output that went away (`engage up | head -3`) stops
    nothing: the engine runs on, and stops as cleanly, without printing."""
    try:
        print(line, flush=True)
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def cmd_emit(args: argparse.Namespace) -> int:
    send = _sender(args)
    counts: Counter[str] = Counter()  # what was answered so far, also when it stops midway
    try:
        with _input(args.file) as stream, _progress("emit") as progress:
            asyncio.run(send(iter(stream), progress, counts))
    except (KeyboardInterrupt, UsageError):
        if counts:
            _print_counts(counts)
            print(f"engage emit: stopped after {sum(counts.values())} events, counted above; sending the same "
                  "input again is safe (what is already in the log comes back as duplicates; what was rejected is "
                  "decided again)", file=sys.stderr)
        raise
    _print_counts(counts)
    return _not_sent(counts)


Sender = Callable[[Iterator[bytes], Callable[[int], None], Counter[str]], Coroutine[Any, Any, Counter[str]]]


def _sender(args: argparse.Namespace) -> Sender:
    """How `emit` sends, from its flags, all checked before the input is read: a mistake sends nothing."""
    from ops import emit

    for value, flag in ((args.token, "--token"), (args.token_name, "--token-name")):
        if value is not None and not value:
            raise UsageError(f"{_named(value, flag)} is empty: give the producer's, or leave it out for an engine "
                             "run without --auth")
    if args.http:
        for value, flag in ((args.subject, "--subject"), (args.token_name, "--token-name")):
            if value is not None and not isinstance(value, FromEnvironment):  # a variable set for NATS may stay
                raise UsageError(f"{flag} is for --nats: over --http give only --token")
        url = emit.engine_url(args.http)
        return lambda lines, progress, counts: emit.emit_http(url, lines, progress, token=args.token, counts=counts)
    subject = emit.literal_subject(emit.SUBJECT if args.subject is None else args.subject)
    parse_nats_url(args.nats)
    login = _nats_login(args)
    return lambda lines, progress, counts: emit.emit_nats(args.nats, lines, progress, subject, counts=counts,
                                                          login=login)


def _not_sent(counts: Counter[str]) -> int:
    """Exit 1 when lines could not be sent at all: a NATS server refuses a message over its
    max_payload whole, before the engine can keep it as a reject (HTTP takes it: `too_large`), and
    no request can carry a line over the engine's body limit."""
    from ops.emit import NOT_SENT

    lines = sum(n for name, n in counts.items() if name.startswith(NOT_SENT))
    if not lines:
        return 0
    were = "line was" if lines == 1 else "lines were"
    if any(name.startswith(NOT_SENT) and "NATS" in name for name in counts):
        print(f"engage emit: {lines} {were} not sent, over the NATS server's max_payload: send the same input "
              "with --http, where such lines are kept as too_large rejects (sending again is safe: what is in the "
              "log already comes back as duplicates)", file=sys.stderr)
    else:
        print(f"engage emit: {lines} {were} not sent, each alone over the engine's request body limit: an event is "
              "at most 64 KiB, so such a line could only be a too_large reject; the other lines were sent",
              file=sys.stderr)
    return 1


def _nats_login(args: argparse.Namespace) -> tuple[str, str] | None:
    """The producer `emit --nats` logs in as: credentials in the URL win; else a token (flag or
    ENGAGE_TOKEN) with its name, which keeps the token out of the command line."""
    if "@" in args.nats or (args.token is None and args.token_name is None):
        return None
    if args.token is None or args.token_name is None:
        raise UsageError("over NATS a producer logs in with its token and the token's name: give both --token "
                         "(or ENGAGE_TOKEN) and --token-name (or ENGAGE_TOKEN_NAME)")
    return args.token_name, args.token


def cmd_verify(args: argparse.Namespace) -> int:
    from ops import audit

    if args.export is not None and args.data is not None:
        raise UsageError("give an export file or --data, not both")
    with _progress("verify", None if args.export is not None else _head(Path(args.data or _default_data()))
                   ) as progress:
        if args.export is not None:
            checked = audit.verify_file(args.export, progress, reaching=args.head)
        else:
            checked = audit.verify_data(Path(args.data or _default_data()), progress, reaching=args.head)
    if checked.broken is not None:
        print(f"broken at position {checked.broken.position}: {checked.broken.problem}")
        return 1
    print(f"ok: {checked.records} records, chain intact; head hash {checked.head_hash}")
    return 0


HEAD_HASH = re.compile(r"[0-9a-f]{64}")


def _head_hash(value: str) -> str:
    if not HEAD_HASH.fullmatch(value):
        raise argparse.ArgumentTypeError(f"{value!r} is not a record's hash: 64 lower-case hex digits, as "
                                         "GET /health shows them under log.head_hash")
    return value


def cmd_export(args: argparse.Namespace) -> int:
    from ops import audit

    data = Path(args.data)
    with _progress("export", _head(data)) as progress:
        if args.output is None:
            out: BinaryIO = sys.stdout.buffer
            count = audit.export(data, out, decrypt=args.decrypt, progress=progress)
            out.flush()
        else:
            count = audit.export_to_file(data, args.output, decrypt=args.decrypt, progress=progress)
    print(f"exported {count} records" + (f" to {args.output}" if args.output else ""), file=sys.stderr)
    if args.decrypt and (data / REPLAY_MARKER).exists():
        print(f"engage export: {data} is a replay, which keeps no keys: no personal field was readable "
              "(export --decrypt the live directory)", file=sys.stderr)
    return 0


def cmd_rebuild(args: argparse.Namespace) -> int:
    from ops import replay

    with _progress("rebuild", _head(Path(args.data))) as progress:
        position = replay.rebuild(Path(args.data), progress)
    print(f"rebuilt the read models of {args.data} to position {position}")
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    from ops import replay

    to_time = None if args.to_time is None else _instant(args.to_time, "--to-time")
    with _progress("replay", args.to_position or _head(Path(args.data))) as progress:
        position = replay.replay(Path(args.data), args.into, to_position=args.to_position, to_time=to_time,
                                 progress=progress)
    print(f"replayed {args.data} to position {position} into {args.into}: "
          f"serve it with engage up --data {args.into} --read-only")
    return 0


def cmd_history(args: argparse.Namespace) -> int:
    from ops.history import history

    found = history(Path(args.data), args.key)
    if found.replay:
        print(f"engage history: {args.data} is a replay, which keeps no keys: personal fields are null "
              "(read them in the live directory)", file=sys.stderr)
    if found.position < found.head:
        print(f"engage history: the read models stand at position {found.position} of {found.head}: "
              "the latest events may be missing", file=sys.stderr)
    if args.json or not sys.stdout.isatty():
        if found.erased_at is not None:
            print(f"engage history: {found.key} was erased at position {found.erased_at}: "
                  "its personal fields are null", file=sys.stderr)
        out = sys.stdout.buffer
        for item in found.events:
            out.write(msgspec.json.encode(item) + b"\n")
        out.flush()
    else:
        _print_history(found)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from ops.demo import run_demo

    if not args.rate > 0:
        raise UsageError(f"--rate {args.rate}: give a number of events per second above 0")
    if args.history < 0 or (args.duration is not None and args.duration < 0):
        raise UsageError("--history and --duration cannot be negative")
    parse_nats_url(args.nats, _named(args.nats, "--nats"))
    print(f"engage demo: publishing to {without_credentials(args.nats)} at about {args.rate:g} events/s"
          + (f" for {args.duration:g} s" if args.duration is not None else " until Ctrl-C"), flush=True)
    counts = asyncio.run(run_demo(args.nats, rate=args.rate, duration=args.duration, history=args.history,
                                  seed=args.seed, say=lambda line: print(line, flush=True)))
    _print_counts(counts)
    return 0


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "up": cmd_up, "emit": cmd_emit, "verify": cmd_verify, "export": cmd_export,
    "rebuild": cmd_rebuild, "replay": cmd_replay, "history": cmd_history, "demo": cmd_demo,
}


@contextlib.contextmanager
def _input(name: str) -> Iterator[BinaryIO]:
    if name == "-":
        yield sys.stdin.buffer
        return
    try:
        stream = open(name, "rb")  # noqa: SIM115 - closed below; only opening it is the user's mistake
    except FileNotFoundError:
        raise UsageError(f"{name}: no such file") from None
    except OSError as e:
        raise UsageError(f"cannot read {name}: {e.strerror}") from e
    with stream:  # what fails while it is in use (a publish timing out: an OSError too) is not about the file
        yield stream


@contextlib.contextmanager
def _progress(what: str, total: int | None = None) -> Iterator[Callable[[int], None]]:
    """A progress bar on a terminal (stderr): with the percentage and time left when the total is
    known, else a live count; silent in pipes and CI."""
    if not sys.stderr.isatty():
        yield lambda n: None
        return
    from rich.progress import (
        BarColumn,
        Progress,
        ProgressColumn,
        SpinnerColumn,
        TaskProgressColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns: list[ProgressColumn] = [SpinnerColumn()]
    if total:
        columns += [TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(),
                    TextColumn("{task.completed:,}/{task.total:,} records"), TimeRemainingColumn()]
    else:
        columns += [TextColumn("{task.description} {task.completed:,} records")]
    from rich.console import Console

    # On stderr, where the isatty check looked: stdout may be the data (`engage export | jq`).
    with Progress(*columns, TimeElapsedColumn(), transient=True, console=Console(stderr=True)) as bar:
        task = bar.add_task(what, total=total or None)
        yield lambda n: bar.update(task, completed=n)


def _head(data: Path) -> int | None:
    """The log's head position, for a progress bar's total; None when there is no readable log
    (the command itself then says what is wrong)."""
    from engine.log import Log, LogError

    if not (data / "log.sqlite").is_file():
        return None  # opening it would create an empty file
    try:
        log = Log(data / "log.sqlite", create=False)
    except (LogError, OSError):
        return None
    try:
        return log.head.position
    finally:
        log.close()


def _instant(value: str, flag: str) -> datetime:
    try:
        return parse_instant(value)
    except ValueError as e:
        raise UsageError(f"{flag} {value!r} {e}") from None


def _print_history(found: History) -> None:
    from rich import box
    from rich.console import Console
    from rich.table import Table

    from commands.touchpoints import PERSONAL_FIELDS

    if found.erased_at is not None:
        title = f"{found.key}: erased at position {found.erased_at}, personal fields gone"
    else:
        title = f"{found.key}: {len(found.events)} events"
    # light borders: room for the data
    table = Table(title=_inert(title), title_justify="left", box=box.SIMPLE_HEAD)
    table.add_column("position", justify="right", no_wrap=True)
    for column in ("occurred_at", "type", "channel", "by"):
        table.add_column(column, overflow="fold")
    table.add_column("data", overflow="fold", ratio=1)
    for item in found.events:
        identity = item.get("identity")
        by = item.get("customer") or (f"~{identity['channel']}:{identity['handle']}" if identity else "")
        data = ", ".join(f"{k}={'(erased)' if v is None and k in PERSONAL_FIELDS else _summary(v)}"
                         for k, v in item["data"].items())
        table.add_row(*(_inert(cell) for cell in (str(item["position"]), item["occurred_at"], item["type"],
                                                    item["channel"], by, data)))
    Console().print(table)


_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def _inert(text: str) -> Text:
    """Customer data as the terminal shows it: never markup (`[bold]`, `[link=…]`), never control
    sequences (ESC clears the screen or sets the window title): those are written out, `\x1b`."""
    from rich.text import Text

    return Text(_printable(text))


def _printable(text: str) -> str:
    return _CONTROL.sub(lambda m: m.group().encode("unicode_escape").decode(), text)


def _summary(value: object, width: int = 60) -> str:
    if value is None:
        return "∅"
    text = value if isinstance(value, str) else msgspec.json.encode(value).decode()
    return text if len(text) <= width else text[:width - 1] + "…"


def _print_counts(counts: Counter[str]) -> None:
    width = max((len(k) for k in counts), default=0)
    for name, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
        print(f"{name:<{width}}  {n}")
    if not counts:
        print("nothing to send")


if __name__ == "__main__":
    main()
