"""Who may reach the app, and which files a browser may make it touch.

Three rules, each a pure function with tests:

* :func:`check_exposure` - binding anything but loopback, or ``--share``, needs ``--auth`` or an
  explicit ``--insecure-no-auth`` (which earns a loud warning).
* :func:`sanitize_filename` / :func:`store_upload` - uploads get a safe name, a size limit and land
  under the app's uploads folder, never overwriting an earlier upload.
* :func:`resolve_user_path` - a path typed in the browser is expanded, resolved (symlinks too) and
  must fall inside one of the allowed folders.
* :class:`LoginThrottle` - with ``--auth``, a client that keeps guessing the password is slowed
  down, then locked out for a while (the right password included).
"""

from __future__ import annotations

import asyncio
import contextvars
import hashlib
import hmac
import re
import shutil
import threading
import time
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from tunesmith.core.errors import UserError
from tunesmith.core.serve.exposure import is_loopback  # one loopback rule for the studio and the API server
# The files that make a folder a run folder (core/train/rundir.py); an upload never takes these names.
RUN_FILE_NAMES = frozenset({"status.json", "config.yaml", "command.txt", "metrics.jsonl", "samples.jsonl",
                            "train.log", "stop", "deepspeed.json"})
ALLOWED_UPLOAD_SUFFIXES = (".json", ".jsonl", ".csv", ".parquet", ".txt", ".tsv", ".gguf", ".yaml", ".yml")


@dataclass(frozen=True)
class Exposure:
    """What :func:`check_exposure` decided: the gradio ``auth`` value and any warning to print."""

    auth: tuple[str, str] | None
    warning: str = ""


def parse_auth(text: str) -> tuple[str, str]:
    """``"user:pass"`` -> ``("user", "pass")``; the password may itself contain ':'.

    >>> parse_auth("ann:s3:cret")
    ('ann', 's3:cret')
    """
    user, sep, password = (text or "").partition(":")
    if not sep or not user or not password:
        raise UserError("--auth must look like user:password, with both parts non-empty.",
                        "Example: --auth alice:a-long-passphrase")
    return user, password


def check_exposure(host: str, share: bool, auth: str | None, insecure_no_auth: bool) -> Exposure:
    """Refuse to serve the studio beyond this machine without a password, unless told explicitly.

    >>> check_exposure("127.0.0.1", False, None, False)
    Exposure(auth=None, warning='')
    >>> check_exposure("0.0.0.0", False, "a:b", False).auth
    ('a', 'b')
    """
    creds = parse_auth(auth) if auth else None
    exposed = share or not is_loopback(host)
    if not exposed or creds:
        return Exposure(creds)
    where = "a public gradio.live link (--share)" if share else f"every network interface of {host}"
    if not insecure_no_auth:
        raise UserError(f"refusing to serve on {where} without a password: anyone who can reach it could "
                        "train, read your datasets and run models on this machine.",
                        "Add --auth user:password, or keep the default --host 127.0.0.1. "
                        "If you really want no password, add --insecure-no-auth.")
    bar = "!" * 78
    return Exposure(None, f"{bar}\nWARNING: serving Tunesmith on {where} WITHOUT A PASSWORD "
                          f"(--insecure-no-auth).\nAnyone who can reach it can start jobs and read files "
                          f"in the allowed folders.\n{bar}")


# The address of the client whose request is being served, set by ClientHostMiddleware. gradio calls an
# auth callable with (username, password) only, so the login check reads the client from here.
CLIENT_HOST: contextvars.ContextVar[str] = contextvars.ContextVar("tunesmith_client_host", default="")


class ClientHostMiddleware:
    """ASGI middleware: remembers the peer address of each request for :class:`LoginThrottle`.

    Only the socket's peer address counts: an ``X-Forwarded-For`` header is whatever the guesser
    writes, so trusting it would give every guess a fresh client. Behind ``--share`` every browser
    arrives through the same tunnel, so the lockout is shared by all of them (safe, if blunt).
    """

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        client = scope.get("client") if scope.get("type") in ("http", "websocket") else None
        token = CLIENT_HOST.set(str(client[0]) if client else "")
        try:
            await self.app(scope, receive, send)
        finally:
            CLIENT_HOST.reset(token)


@dataclass
class _Attempts:
    failures: int = 0
    lockouts: int = 0
    locked_until: float = 0.0
    last: float = 0.0


@dataclass
class LoginThrottle:
    """The ``--auth`` check, per client: each wrong password costs ``delay_s``; ``max_failures`` in a
    row lock the client out for ``lockout_s`` (doubling with each further lockout, at most
    ``max_lockout_s``), during which even the right password is refused.

    gradio awaits :meth:`login` (an ``async def``), so the delay holds back only that guess, not
    the app. Without a known client address (no middleware) every request shares one budget.

    >>> t = LoginThrottle("ann", "pw", max_failures=2, lockout_s=60, delay_s=0)
    >>> t.check("ann", "x", "1.2.3.4"), t.check("ann", "y", "1.2.3.4"), t.check("ann", "pw", "1.2.3.4")
    (False, False, False)
    >>> t.check("ann", "pw", "5.6.7.8"), t.locked_for("1.2.3.4") > 0
    (True, True)
    """

    user: str
    password: str
    max_failures: int = 5
    lockout_s: float = 60.0
    delay_s: float = 1.0
    max_lockout_s: float = 3600.0
    clock: Callable[[], float] = time.monotonic
    _clients: dict = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    MAX_CLIENTS = 10_000  # a bound on memory when guesses come from very many addresses

    def locked_for(self, client: str = "") -> float:
        """Seconds until ``client`` may try again (0 when not locked out)."""
        with self._lock:
            state = self._clients.get(client)
            return max(0.0, state.locked_until - self.clock()) if state else 0.0

    def check(self, username: str, password: str, client: str = "") -> bool:
        """True for the right user and password from a client that is not locked out."""
        now = self.clock()
        with self._lock:
            state = self._clients.get(client)
            if state is None:
                self._forget_old(now)
                state = self._clients[client] = _Attempts()
            state.last = now
            if now < state.locked_until:
                return False
            # both compared every time, so the answer's timing does not say which one was wrong
            user_ok = hmac.compare_digest(str(username).encode(), self.user.encode())
            password_ok = hmac.compare_digest(str(password).encode(), self.password.encode())
            if user_ok and password_ok:
                state.failures = 0
                return True
            state.failures += 1
            if state.failures >= self.max_failures:
                state.locked_until = now + min(self.lockout_s * 2 ** state.lockouts, self.max_lockout_s)
                state.lockouts += 1
                state.failures = 0
            return False

    def _forget_old(self, now: float) -> None:
        if len(self._clients) < self.MAX_CLIENTS:
            return
        keep = {c: s for c, s in self._clients.items()
                if s.locked_until > now or now - s.last < self.max_lockout_s}
        self._clients.clear()
        self._clients.update(keep)

    async def login(self, username: str, password: str) -> bool:
        """gradio's ``auth`` callable (it awaits coroutine functions, so the delay blocks nothing else)."""
        ok = self.check(username, password, CLIENT_HOST.get())
        if not ok and self.delay_s > 0:
            await asyncio.sleep(self.delay_s)
        return ok


def sanitize_filename(name: str, *, max_len: int = 120) -> str:
    """A safe, plain file name: no folders, no leading dots, only letters, digits and ``._-``.

    Letters and digits of any script are kept (a Chinese or Cyrillic name stays readable and keeps
    its extension); accents are dropped, and anything else becomes ``_``. A name with nothing
    readable left becomes ``upload-<hash of the name>``, so names that differ stay apart.

    >>> sanitize_filename("../../etc/pass wd.json")
    'pass_wd.json'
    >>> sanitize_filename("C:\\\\Users\\\\x\\\\..\\\\données 1.csv")
    'donnees_1.csv'
    >>> sanitize_filename("数据.json"), sanitize_filename("💾.json")
    ('数据.json', 'upload-f24bba0f.json')
    >>> sanitize_filename("...")
    'upload'
    """
    original = re.split(r"[\\/]", name or "")[-1]
    base = unicodedata.normalize("NFKD", original)
    base = unicodedata.normalize("NFKC", "".join(c for c in base if not unicodedata.combining(c)))
    # \w is Unicode-aware: letters and digits of every script survive; control, format (bidi
    # overrides), symbols and separators do not.
    base = re.sub(r"[^\w.-]+", "_", base.lstrip("."))
    stem, dot, suffix = base.rpartition(".")
    if not (dot and 0 < len(suffix) <= 10 and suffix.isascii() and suffix.isalnum()):
        stem, suffix = base, ""
    stem = stem.strip("._-")
    if not stem:
        if not original.strip(". "):
            stem = "upload"
        else:
            stem = "upload-" + hashlib.sha1(original.encode("utf-8", "surrogatepass")).hexdigest()[:8]
    ext = f".{suffix.lower()}" if suffix else ""
    # The limit is in bytes: file systems cap names at 255 bytes, and a CJK character takes three.
    budget = max_len - len(ext)
    while len(stem.encode("utf-8")) > budget:
        stem = stem[:-1]
    return (stem.rstrip("._-") or "upload") + ext


def _unique(folder: Path, name: str) -> Path:
    """``folder/name``, or ``name-1``, ``name-2``... so an earlier upload is never overwritten."""
    target = folder / name
    stem, suffix = Path(name).stem, Path(name).suffix
    n = 1
    while target.exists():
        target = folder / f"{stem}-{n}{suffix}"
        n += 1
    return target


def store_upload(src: str | Path, original_name: str, uploads_dir: Path, *, max_mb: float,
                 suffixes: tuple[str, ...] = ALLOWED_UPLOAD_SUFFIXES) -> Path:
    """Copy an uploaded temp file into ``uploads_dir`` under a sanitised, unique name.

    Refuses files over ``max_mb`` and kinds that are not datasets/models/configs, with a message
    saying what is accepted.
    """
    src = Path(src)
    if not src.is_file():
        raise UserError(f"the uploaded file {original_name!r} did not arrive.", "Upload it again.")
    size_mb = src.stat().st_size / 2**20
    if size_mb > max_mb:
        raise UserError(f"{original_name!r} is {size_mb:.1f} MB, over the upload limit of {max_mb:g} MB.",
                        "Give its path in the 'path' box instead (it is read in place), or start the app "
                        "with a larger --max-upload-mb.")
    name = sanitize_filename(original_name or src.name)
    if name.lower() in RUN_FILE_NAMES:
        # uploads/status.json would make the uploads folder look like a run folder to anything that
        # recognises runs by their files.
        name = f"upload-{name}"
    if not name.lower().endswith(suffixes):
        raise UserError(f"{original_name!r} is not a file kind the app reads.",
                        f"Upload one of: {', '.join(suffixes)}.")
    uploads_dir.mkdir(parents=True, exist_ok=True)
    target = _unique(uploads_dir, name)
    shutil.copyfile(src, target)
    return target


def _inside(path: Path, root: Path) -> bool:
    try:
        rel = path.relative_to(root)
    except ValueError:
        return False
    # A hidden folder under an allowed root (.ssh, .git, .env) is not the user's data.
    return not any(part.startswith(".") for part in rel.parts)


def resolve_user_path(text: str, roots: list[Path], *, must_exist: bool = True, what: str = "path") -> Path:
    """Expand ``~``, resolve symlinks and ``..``, and check the result lies inside an allowed root.

    >>> resolve_user_path("/etc/passwd", [Path("/tmp")])  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    tunesmith.core.errors.UserError: /etc/passwd is outside the folders this app may use (/tmp). Fix: ...
    """
    text = (text or "").strip()
    if not text:
        raise UserError(f"no {what} given.", f"Type the {what}.")
    if "\x00" in text:
        raise UserError(f"the {what} contains a NUL character.", "Type a plain path.")
    path = Path(text).expanduser()
    if not path.is_absolute():
        path = Path.cwd() / path
    path = path.resolve(strict=False)
    if not any(_inside(path, Path(r).resolve()) for r in roots):
        shown = ", ".join(str(r) for r in roots)
        raise UserError(f"{text} is outside the folders this app may use ({shown}).",
                        "Upload it with the upload box on the Data tab, or move or link it into one of them, "
                        "or restart the app with --allow-dir FOLDER.")
    if must_exist and not path.exists():
        raise UserError(f"{what} {text} does not exist.", "Check the spelling, or pick it from the list.")
    return path
