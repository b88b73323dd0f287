"""Who may do what on a shared server: the teacher, the visitors, and every quota's number.

The person who starts the server is the teacher: they hold a token (NIN_EXPLORER_TEACHER_TOKEN,
else one generated once into the run store folder) and open the app with `?teacher=TOKEN`.
Everyone else is a visitor with an unguessable id kept in the URL (`?v=...`), who owns the runs
their browser launched. A server that only this machine can reach and that has no token set
has one user, the teacher (one person at home sees no roles at all). Pure functions of plain
values; no streamlit here.
"""
from __future__ import annotations

import hmac
import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path

TEACHER = "teacher"                  # the owner id of the teacher's runs
TOKEN_ENV = "NIN_EXPLORER_TEACHER_TOKEN"
TOKEN_FILE = "teacher-token"
MIN_TOKEN_CHARS = 12
LOCAL_ADDRESSES = ("127.0.0.1", "localhost", "::1")
_VISITOR_ID = re.compile(r"[A-Za-z0-9_-]{16,64}")


class RoleError(ValueError):
    """Something this visitor may not do (or a quota it would pass); the message says which."""


class QuotaError(RoleError):
    """A queue limit would be passed; the message names the limit."""


# --- quotas: every number in one place, each settable by the teacher through its variable ---

@dataclass(frozen=True)
class Limits:
    max_queued_per_visitor: int = 6  # queued + running runs per visitor (one book exercise)
    max_queued: int = 50             # queued + running runs on the whole server
    max_ablation_runs: int = 24      # runs in one ablation

    ENV = {"max_queued_per_visitor": "NIN_EXPLORER_MAX_QUEUED_PER_VISITOR",
           "max_queued": "NIN_EXPLORER_MAX_QUEUED",
           "max_ablation_runs": "NIN_EXPLORER_MAX_ABLATION_RUNS"}

    @classmethod
    def from_env(cls, environ: dict | None = None) -> "Limits":
        """The defaults, each replaced by its variable when that is a whole number 1..9999
        (anything else is ignored, as NIN_EXPLORER_MAX_CONCURRENT is)."""
        environ = os.environ if environ is None else environ
        values = {}
        for field, var in cls.ENV.items():
            text = environ.get(var, "")
            if text.isascii() and text.isdecimal() and len(text) < 5 and int(text) >= 1:
                values[field] = int(text)
        return cls(**values)


def check_quota(limits: Limits, owner: str | None, n_new: int, queued_total: int,
                queued_by_owner: int) -> None:
    """QuotaError unless `owner` may add `n_new` runs to a server with `queued_total` queued or
    running runs, `queued_by_owner` of them theirs. The teacher (or the CLI, owner None) has no
    per-visitor limit; everyone shares the server's."""
    if queued_total + n_new > limits.max_queued:
        raise QuotaError(
            f"The queue is full: {queued_total} runs are queued or running and this server "
            f"takes at most {limits.max_queued} ({Limits.ENV['max_queued']}). Wait for some "
            "to finish, or ask the teacher to clear the queue.")
    if owner not in (None, TEACHER) and queued_by_owner + n_new > limits.max_queued_per_visitor:
        raise QuotaError(
            f"You have {queued_by_owner} run(s) queued or running and each visitor may have at "
            f"most {limits.max_queued_per_visitor} at once "
            f"({Limits.ENV['max_queued_per_visitor']}); this would add {n_new}. Wait for yours "
            "to finish or stop some.")


def check_ablation_size(limits: Limits, n_runs: int) -> None:
    if n_runs > limits.max_ablation_runs:
        raise QuotaError(
            f"That ablation is {n_runs} runs; this server takes at most "
            f"{limits.max_ablation_runs} in one ({Limits.ENV['max_ablation_runs']}). "
            "Use fewer values or seeds.")


# --- the teacher's token ---

def teacher_token(home: str | os.PathLike, environ: dict | None = None) -> str:
    """NIN_EXPLORER_TEACHER_TOKEN when set, else the token kept in `home`/teacher-token
    (made once, readable by this user only, so the teacher link survives restarts)."""
    environ = os.environ if environ is None else environ
    given = environ.get(TOKEN_ENV, "")
    if given:
        if len(given) < MIN_TOKEN_CHARS or not given.isascii() or not given.isprintable():
            raise RoleError(f"{TOKEN_ENV} must be at least {MIN_TOKEN_CHARS} printable ASCII "
                            "characters, or unset (then a token is made for you).")
        return given
    path = Path(home) / TOKEN_FILE
    try:
        kept = path.read_text(encoding="ascii").strip()
        if _VISITOR_ID.fullmatch(kept):
            return kept
    except (OSError, UnicodeDecodeError):
        pass
    token = secrets.token_urlsafe(24)
    tmp = path.with_name(f"{TOKEN_FILE}.tmp-{os.getpid()}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="ascii") as f:
            f.write(token + "\n")
        os.replace(tmp, path)
    except OSError as e:
        raise RoleError(f"Cannot keep the teacher's token in {path.parent} ({e.strerror or e}); "
                        f"set NIN_EXPLORER_HOME to a writable folder or set {TOKEN_ENV}.") from None
    return token


def teacher_link(token: str, port: int = 8501) -> str:
    return f"http://localhost:{port}/?teacher={token}"


def single_user(server_address: str | None, environ: dict | None = None) -> bool:
    """Whether the server has one user, the teacher: bound to this machine only (streamlit's
    server.address) and no teacher token set. An empty address binds every interface."""
    environ = os.environ if environ is None else environ
    local = (server_address or "").strip().lower() in LOCAL_ADDRESSES
    return local and not environ.get(TOKEN_ENV)


# --- who is asking ---

@dataclass(frozen=True)
class Visitor:
    """One browser: `id` owns its runs (TEACHER for the teacher); `query` are the URL
    parameters that keep this identity across reloads and pages."""

    id: str
    is_teacher: bool
    query: dict
    refused_link: bool = False   # a ?teacher= that did not match: said once on the page


def identify(token: str, single: bool, teacher_param: str | None = None,
             visitor_param: str | None = None, remembered: Visitor | None = None) -> Visitor:
    """Who this browser is, from its URL parameters and what its session remembers."""
    if single:
        return Visitor(TEACHER, True, {})
    if teacher_param is not None and is_teacher_token(teacher_param, token):
        return Visitor(TEACHER, True, {"teacher": teacher_param})
    if remembered is not None and remembered.is_teacher and remembered.query.get("teacher") \
            and is_teacher_token(remembered.query["teacher"], token):
        return remembered
    refused = teacher_param is not None
    if isinstance(visitor_param, str) and _VISITOR_ID.fullmatch(visitor_param):
        return Visitor(visitor_param, False, {"v": visitor_param}, refused)
    if remembered is not None and not remembered.is_teacher:
        return Visitor(remembered.id, False, remembered.query, refused)
    new = secrets.token_urlsafe(16)
    return Visitor(new, False, {"v": new}, refused)


def is_teacher_token(given, token: str) -> bool:
    """A constant-time comparison that any text (or garbage) may be given to."""
    if not isinstance(given, str) or not token or len(given) > 256:
        return False
    return hmac.compare_digest(given.encode("utf-8", "replace"), token.encode("utf-8"))


def may_stop(who: str, run_owner: str | None) -> bool:
    """The teacher stops any run; a visitor only the runs they launched."""
    return who == TEACHER or (bool(run_owner) and run_owner == who)


def check_stop(who: str, run: dict) -> None:
    if not may_stop(who, run.get("owner")):
        raise RoleError(f"Run #{run['id']} is not yours, so you cannot stop it: only the "
                        "visitor who launched it, or the teacher, can.")


def check_teacher(who: str, action: str) -> None:
    if who != TEACHER:
        raise RoleError(f"Only the teacher can {action}.")


def describe(visitor: Visitor, limits: Limits, queued_by_visitor: int) -> str:
    """The sidebar's line: who you are and what you may do."""
    if visitor.is_teacher:
        return ("You are the teacher: you can stop any run, clear the queue and set runs at "
                f"once. Visitors may queue {limits.max_queued_per_visitor} runs each, "
                f"{limits.max_queued} in all.")
    return (f"You are a visitor: you can stop the runs you started; {queued_by_visitor} of "
            f"{limits.max_queued_per_visitor} queued or running. Keep this page's address to "
            "find your runs again.")


def public_error(error: str | None) -> str:
    """The one line of a run's error that every visitor may read (details are the teacher's)."""
    line = (error or "").strip().splitlines()[0] if (error or "").strip() else ""
    return line[:300] or "no error text"
