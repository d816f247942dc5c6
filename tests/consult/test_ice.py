"""consult.ice: the ICE servers browsers and the media service get, and TURN REST credentials.

The credential scheme is the one coturn checks with ``use-auth-secret`` (a real coturn is
exercised in test_turn_coturn.py). And no public STUN server appears anywhere we ship.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from pathlib import Path

from django.test import override_settings

from consult.ice import ice_servers_for, turn_credentials

REPO = Path(__file__).resolve().parents[2]
SECRET = "unit-test-turn-secret"
URLS = [
    "turn:turn.example.cn:3478?transport=udp",
    "turn:turn.example.cn:3478?transport=tcp",
    "turns:turn.example.cn:443?transport=tcp",
]
TURN = {"SECRET": SECRET, "URLS": URLS, "TTL_SECONDS": 600}


def _expected_password(username: str, secret: str = SECRET) -> str:
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


@override_settings(TURN=TURN)
def test_the_username_is_the_expiry_time_and_the_user_id() -> None:
    username, _password, expires_at = turn_credentials(user_id=7, now=1_700_000_000)
    assert expires_at == 1_700_000_600
    assert username == "1700000600:7"


@override_settings(TURN=TURN)
def test_the_password_is_the_base64_hmac_sha1_of_the_username_with_the_shared_secret() -> None:
    username, password, _expires = turn_credentials(user_id=7, now=1_700_000_000)
    assert password == _expected_password(username)
    assert len(base64.b64decode(password)) == 20  # SHA-1


@override_settings(TURN=TURN)
def test_credentials_expire_after_the_configured_ttl() -> None:
    with override_settings(TURN={**TURN, "TTL_SECONDS": 120}):
        _u, _p, short = turn_credentials(user_id=7, now=1_000)
    _u, _p, default = turn_credentials(user_id=7, now=1_000)
    assert (short, default) == (1_120, 1_600)


@override_settings(TURN=TURN)
def test_credentials_differ_per_user_and_per_secret() -> None:
    alice = turn_credentials(user_id=1, now=1_000)
    bob = turn_credentials(user_id=2, now=1_000)
    assert alice[1] != bob[1]
    with override_settings(TURN={**TURN, "SECRET": "another-secret"}):
        forged = turn_credentials(user_id=1, now=1_000)
    assert forged[0] == alice[0]
    assert forged[1] != alice[1]


@override_settings(TURN=TURN)
def test_the_browser_gets_one_turn_entry_with_every_configured_url() -> None:
    servers = ice_servers_for(7, now=1_000)
    assert servers == [
        {"urls": URLS, "username": "1600:7", "credential": _expected_password("1600:7")}
    ]


@override_settings(TURN={"SECRET": None, "URLS": [], "TTL_SECONDS": 600})
def test_without_turn_the_list_is_empty_never_a_default_stun_server() -> None:
    servers = ice_servers_for(7)
    assert servers == []
    assert isinstance(servers, list)


# --- No public STUN anywhere ------------------------------------------------------------------

SKIP_DIRS = {".git", ".venv", "node_modules", "data", "__pycache__", ".mypy_cache", ".ruff_cache"}
TEXT_SUFFIXES = {".py", ".js", ".mjs", ".html", ".md", ".yaml", ".yml", ".toml", ".json", ".txt"}
TEXT_SUFFIXES |= {".cfg", ".ini", ".conf", ".env", ".sh", ".css"}
STUN_URL = re.compile(r"\bstuns?:(?://)?([A-Za-z0-9][A-Za-z0-9.\-]*)", re.IGNORECASE)
PUBLIC_STUN_HOSTS = re.compile(r"stun[0-9]*\.l\.google\.com|stun\.[a-z0-9\-]+\.(com|org|net)")
PLACEHOLDER_HOST = re.compile(
    r"^(127\.0\.0\.1|localhost|::1|.*\.example(\.[a-z]+)?|example\.[a-z.]+)$"
)


def _repository_text_files() -> list[Path]:
    files = []
    for path in REPO.rglob("*"):
        if any(part in SKIP_DIRS for part in path.relative_to(REPO).parts):
            continue
        if path.is_file() and (path.suffix in TEXT_SUFFIXES or path.name in {"Dockerfile", "run"}):
            files.append(path)
    return files


def test_no_public_stun_server_appears_in_the_repository() -> None:
    offenders = []
    for path in _repository_text_files():
        text = path.read_text(encoding="utf-8", errors="ignore")
        for match in STUN_URL.finditer(text):
            host = match.group(1).rstrip(".").lower()
            if not PLACEHOLDER_HOST.match(host):
                offenders.append(f"{path.relative_to(REPO)}: {match.group(0)}")
        offenders += [
            f"{path.relative_to(REPO)}: {m.group(0)}" for m in PUBLIC_STUN_HOSTS.finditer(text)
        ]
    assert offenders == []


def test_every_peer_connection_we_create_gets_an_explicit_configuration() -> None:
    """aiortc falls back to Google's STUN server and browsers to their own when not told."""
    bare = re.compile(r"RTCPeerConnection\(\s*\)|RTCConfiguration\(\s*\)|iceServers\s*=\s*None")
    offenders = []
    for path in _repository_text_files():
        if path.suffix not in {".py", ".js", ".mjs", ".html"} or "static/viewer" in str(path):
            continue
        if path == Path(__file__):
            continue
        text = path.read_text(encoding="utf-8", errors="ignore")
        offenders += [f"{path.relative_to(REPO)}: {m.group(0)}" for m in bare.finditer(text)]
    assert offenders == []
