"""Where the app keeps its files and which folders typed paths may point into.

>>> s = AppSettings.from_env({"TUNESMITH_HOME": "/tmp/th"})
>>> str(s.runs_root), str(s.uploads_dir)
('/tmp/th/runs', '/tmp/th/uploads')
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from tunesmith.app.security import is_loopback
from tunesmith.core import paths

DEFAULT_MAX_UPLOAD_MB = 512


def launch_roots(host: str, share: bool, allow_dirs: tuple[str, ...] | list[str] = (),
                 user_home: Path | None = None) -> tuple[str, ...]:
    """The extra folders typed paths may use for a studio bound to ``host``.

    Only this machine can reach a loopback-bound studio, so whoever types a path there is the
    user who started it: their home folder is allowed too (hidden folders such as ~/.ssh stay
    refused by resolve_user_path). Any other host or a --share link keeps the stricter rule: only
    the app's folders and --allow-dir.

    >>> launch_roots("127.0.0.1", False, ["/data"], Path("/home/me"))
    ('/data', '/home/me')
    >>> launch_roots("0.0.0.0", False, ["/data"], Path("/home/me")), launch_roots("127.0.0.1", True, (), Path("/h"))
    (('/data',), ())
    """
    roots = tuple(str(d) for d in allow_dirs)
    if is_loopback(host) and not share:
        roots += (str(user_home or Path.home()),)
    return roots


@dataclass
class AppSettings:
    home: Path = field(metadata={"help": "Per-user folder (TUNESMITH_HOME)."})
    runs_root: Path = field(metadata={"help": "Folder holding one sub-folder per training run."})
    uploads_dir: Path = field(metadata={"help": "Where uploaded dataset files are stored (sanitised names)."})
    exports_dir: Path = field(metadata={"help": "Default parent folder of converted / merged models."})
    lang: str = field(default="en", metadata={"help": "UI language: en or zh."})
    max_upload_mb: int = field(default=DEFAULT_MAX_UPLOAD_MB, metadata={"help": "Largest accepted upload."})
    extra_roots: tuple[Path, ...] = field(default=(), metadata={"help": "More folders typed paths may use."})

    @classmethod
    def from_env(cls, env: dict | None = None, *, runs_root: str | None = None, lang: str = "en",
                 max_upload_mb: int | None = None, extra_roots: tuple[str, ...] = ()) -> "AppSettings":
        env = os.environ if env is None else env
        home = Path(env.get("TUNESMITH_HOME") or paths.home()).expanduser()
        runs = Path(runs_root or env.get("TUNESMITH_RUNS") or home / "runs").expanduser()
        return cls(home=home, runs_root=runs, uploads_dir=home / "uploads", exports_dir=home / "exports",
                   lang=lang, max_upload_mb=max_upload_mb or DEFAULT_MAX_UPLOAD_MB,
                   extra_roots=tuple(Path(p).expanduser() for p in extra_roots))

    def allowed_roots(self) -> list[Path]:
        """Folders a path typed in the browser may resolve into (read or write).

        The app's own folders, the project folder (bundled demo data) and the folder the app was
        started from, plus any ``--allow-dir`` given at launch: the user chooses where the app may
        look, so a path typed in the browser cannot reach ~/.ssh or /etc.
        """
        cwd = Path.cwd()
        # started from "/" (a service manager does that) is no choice of folder: it would allow everything
        started_in = [cwd] if cwd.resolve() != Path(cwd.anchor) else []
        roots = [self.home, self.runs_root, self.uploads_dir, self.exports_dir, paths.PACKAGE_ROOT,
                 *started_in, *self.extra_roots]
        out: list[Path] = []
        for root in roots:
            resolved = Path(root).expanduser().resolve()
            if resolved not in out:
                out.append(resolved)
        return out

    def ensure_dirs(self) -> None:
        for folder in (self.home, self.runs_root, self.uploads_dir, self.exports_dir):
            folder.mkdir(parents=True, exist_ok=True)
