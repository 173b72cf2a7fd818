"""Who may reach the model server: the studio's rule, for an API.

Loopback addresses are private to this machine; binding anything else (0.0.0.0, a LAN address) puts
the model and this machine's CPU/GPU in reach of everyone on the network, so an API key is then
required. The studio applies the same rule with a password (app/security.py, ``check_exposure``, imports
:func:`is_loopback` from here: the engine never imports the GUI package, so the rule lives in core).
"""

from __future__ import annotations

import ipaddress
import os

from tunesmith.core.errors import UserError

LOOPBACK_NAMES = {"localhost", "127.0.0.1", "::1"}
API_KEY_ENV = "TUNESMITH_API_KEY"  # read when --api-key is not given: keeps the key out of `ps` listings


def is_loopback(host: str) -> bool:
    """True for addresses only this machine can reach.

    >>> is_loopback("127.0.0.1"), is_loopback("0.0.0.0"), is_loopback("::1"), is_loopback("192.168.1.4")
    (True, False, True, False)
    """
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def resolve_api_key(api_key: str | None) -> str | None:
    """``--api-key`` if given, else ``$TUNESMITH_API_KEY``, else None (no key)."""
    key = api_key if api_key is not None else os.environ.get(API_KEY_ENV)
    if key is not None and not key.strip():
        raise UserError("the API key is empty.", f"Give a non-empty --api-key (or {API_KEY_ENV}), or leave both unset.")
    return key or None


def check_serve_exposure(host: str, api_key: str | None) -> None:
    """Refuse to serve beyond loopback without an API key.

    >>> check_serve_exposure("127.0.0.1", None)
    >>> check_serve_exposure("0.0.0.0", None)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    tunesmith.core.errors.UserError: refusing to serve on 0.0.0.0 without an API key: ... Fix: Add --api-key ...
    """
    if is_loopback(host) or api_key:
        return
    raise UserError(f"refusing to serve on {host} without an API key: anyone who can reach it could use the model "
                    "and this machine's processors.",
                    f"Add --api-key A-LONG-SECRET (or set {API_KEY_ENV}), or keep the default --host 127.0.0.1.")
