"""Who may reach the app and which files the browser can make it touch."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tunesmith.app.security import (check_exposure, is_loopback, parse_auth, resolve_user_path, sanitize_filename,
                                    store_upload)
from tunesmith.core.errors import UserError

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("host,share,auth,insecure,ok,warns", [
    ("127.0.0.1", False, None, False, True, False),
    ("localhost", False, None, False, True, False),
    ("::1", False, None, False, True, False),
    ("0.0.0.0", False, None, False, False, False),
    ("192.168.1.5", False, None, False, False, False),
    ("127.0.0.1", True, None, False, False, False),
    ("0.0.0.0", False, "ann:pw", False, True, False),
    ("127.0.0.1", True, "ann:pw", False, True, False),
    ("0.0.0.0", False, None, True, True, True),
    ("127.0.0.1", True, None, True, True, True),
])
def test_exposure_rules(host, share, auth, insecure, ok, warns):
    if not ok:
        with pytest.raises(UserError, match="--auth"):
            check_exposure(host, share, auth, insecure)
        return
    exposure = check_exposure(host, share, auth, insecure)
    assert exposure.auth == (parse_auth(auth) if auth else None)
    assert bool(exposure.warning) == warns
    if warns:
        assert "WITHOUT A PASSWORD" in exposure.warning


def test_auth_parsing():
    assert parse_auth("u:p:q") == ("u", "p:q")
    for bad in ("nopass", ":pw", "user:"):
        with pytest.raises(UserError):
            parse_auth(bad)
    assert is_loopback("127.0.0.2") and not is_loopback("example.com")


def _launch(*args, env_home):
    env = dict(os.environ, TUNESMITH_HOME=str(env_home))
    return subprocess.run([sys.executable, str(ROOT / "launch.py"), *args], capture_output=True, text=True,
                          timeout=60, env=env, cwd=str(ROOT))


def test_launch_refuses_public_host_without_auth(tmp_path):
    proc = _launch("--host", "0.0.0.0", "--port", "7", env_home=tmp_path)
    assert proc.returncode == 2
    assert "error: refusing to serve" in proc.stderr and "--auth" in proc.stderr
    assert "Traceback" not in proc.stderr
    proc = _launch("--share", env_home=tmp_path)
    assert proc.returncode == 2 and "gradio.live" in proc.stderr


def test_launch_rejects_malformed_auth(tmp_path):
    proc = _launch("--host", "0.0.0.0", "--auth", "nocolon", env_home=tmp_path)
    assert proc.returncode == 2 and "user:password" in proc.stderr


@pytest.mark.parametrize("raw,expected", [
    ("data.json", "data.json"),
    ("../../etc/passwd", "passwd"),
    ("..\\..\\windows\\evil.CSV", "evil.csv"),
    ("my data (final).jsonl", "my_data_final.jsonl"),
    ("données.csv", "donnees.csv"),
    (".bashrc", "bashrc"),
    ("", "upload"),
    ("a" * 300 + ".json", "a" * 115 + ".json"),
    ("数据.json", "数据.json"),
    ("训练 数据 v2.JSONL", "训练_数据_v2.jsonl"),
    ("данные.csv", "данные.csv"),
    ("\u202egnp.json", "gnp.json"),
    ("数" * 100 + ".json", "数" * 38 + ".json"),
])
def test_sanitize_filename(raw, expected):
    assert sanitize_filename(raw) == expected


def test_a_name_with_nothing_readable_keeps_its_extension_and_a_stable_distinct_name():
    first, second = sanitize_filename("💾.json"), sanitize_filename("📀.json")
    assert first.startswith("upload-") and first.endswith(".json") and first != second
    assert sanitize_filename("💾.json") == first


def test_a_non_ascii_upload_is_stored_under_a_readable_name(tmp_path):
    """Issue 9: '数据.json' was refused as 'not a file kind the app reads' (the name was dropped and
    the extension check saw 'json')."""
    src = tmp_path / "tmp-upload"
    src.write_text('[{"input": "a", "output": "b"}]', encoding="utf-8")
    stored = store_upload(src, "数据.json", tmp_path / "uploads", max_mb=1)
    assert stored == tmp_path / "uploads" / "数据.json" and stored.read_text(encoding="utf-8") == src.read_text()
    again = store_upload(src, "数据.json", tmp_path / "uploads", max_mb=1)
    assert again.name == "数据-1.json"
    assert len(stored.name.encode()) <= 120


def test_an_upload_never_takes_the_name_of_a_run_file(tmp_path):
    """Issue 9: an upload named status.json made the uploads folder look like a run."""
    src = tmp_path / "tmp-upload"
    src.write_text('{"state": "running", "pgid": 1}')
    uploads = tmp_path / "uploads"
    for name in ("status.json", "config.yaml", "STATUS.JSON"):
        stored = store_upload(src, name, uploads, max_mb=1)
        assert stored.name.startswith("upload-")
    assert not (uploads / "status.json").exists() and not (uploads / "config.yaml").exists()
    from tunesmith.core.train.rundir import RunDir

    assert not RunDir(uploads).exists()


def test_store_upload_sanitises_limits_and_never_overwrites(tmp_path):
    uploads = tmp_path / "uploads"
    src = tmp_path / "tmp123"
    src.write_text('[{"input": "a", "output": "b"}]')
    first = store_upload(src, "../../evil name.json", uploads, max_mb=1)
    assert first == uploads / "evil_name.json" and first.read_text() == src.read_text()
    second = store_upload(src, "evil name.json", uploads, max_mb=1)
    assert second == uploads / "evil_name-1.json" and first.exists()
    big = tmp_path / "big"
    big.write_bytes(b"x" * (2 * 2**20))
    with pytest.raises(UserError, match="over the upload limit of 1 MB"):
        store_upload(big, "big.json", uploads, max_mb=1)
    with pytest.raises(UserError, match="not a file kind"):
        store_upload(src, "script.sh", uploads, max_mb=1)
    assert sorted(p.name for p in uploads.iterdir()) == ["evil_name-1.json", "evil_name.json"]


def test_resolve_user_path_stays_inside_allowed_roots(tmp_path):
    root = tmp_path / "allowed"
    (root / "sub").mkdir(parents=True)
    (root / "sub" / "d.json").write_text("[]")
    (root / ".ssh").mkdir()
    (root / ".ssh" / "id").write_text("secret")
    outside = tmp_path / "outside.txt"
    outside.write_text("no")
    (root / "link").symlink_to(outside)
    roots = [root]
    assert resolve_user_path(str(root / "sub" / ".." / "sub" / "d.json"), roots) == root / "sub" / "d.json"
    for bad in (str(outside), str(root / ".." / "outside.txt"), str(root / "link"), "/etc/passwd",
                str(root / ".ssh" / "id")):
        with pytest.raises(UserError, match="outside the folders"):
            resolve_user_path(bad, roots)
    with pytest.raises(UserError, match="does not exist"):
        resolve_user_path(str(root / "missing.json"), roots)
    assert resolve_user_path(str(root / "new.yaml"), roots, must_exist=False) == root / "new.yaml"
    with pytest.raises(UserError, match="NUL"):
        resolve_user_path("a\x00b", roots)


def test_loopback_studio_may_use_the_users_home_other_hosts_may_not(tmp_path):
    from tunesmith.app.settings import launch_roots

    home = tmp_path / "me"
    assert launch_roots("127.0.0.1", False, [], home) == (str(home),)
    assert launch_roots("localhost", False, ["/data"], home) == ("/data", str(home))
    # reachable from elsewhere (another address or a share link): only the app's folders and --allow-dir
    assert launch_roots("0.0.0.0", False, ["/data"], home) == ("/data",)
    assert launch_roots("192.168.1.5", False, [], home) == ()
    assert launch_roots("127.0.0.1", True, [], home) == ()


def test_home_allowed_on_loopback_still_refuses_hidden_folders(tmp_path):
    from tunesmith.app.settings import AppSettings, launch_roots

    home = tmp_path / "me"
    (home / "notes").mkdir(parents=True)
    (home / "notes" / "faq.csv").write_text("q,a\n")
    (home / ".ssh").mkdir()
    (home / ".ssh" / "id_rsa").write_text("secret")
    s = AppSettings.from_env({"TUNESMITH_HOME": str(tmp_path / "th")},
                             extra_roots=launch_roots("127.0.0.1", False, [], home))
    assert resolve_user_path(str(home / "notes" / "faq.csv"), s.allowed_roots()) == home / "notes" / "faq.csv"
    with pytest.raises(UserError):
        resolve_user_path(str(home / ".ssh" / "id_rsa"), s.allowed_roots())


def test_outside_path_error_offers_the_upload_box_in_both_languages(tmp_path):
    from tunesmith.app.engine_text import translate

    with pytest.raises(UserError) as err:
        resolve_user_path("/etc/passwd", [tmp_path])
    assert "upload box on the Data tab" in err.value.fix
    assert "数据页的上传框" in translate(err.value.fix, "zh")
