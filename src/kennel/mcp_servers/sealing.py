"""Encryption of the headers an MCP server is registered with (Fernet: AES-128-CBC + HMAC).

The key is `KENNEL_SECRET_KEY` (any string, stretched by SHA-256) or, unset, a secret made at
the first start and kept in the database, which every process reads alike.
"""

from __future__ import annotations

import base64
import hashlib
import json

from cryptography.fernet import Fernet, InvalidToken

from kennel.auth.sessions import server_secret
from kennel.core.settings import Settings
from kennel.db import Database

__all__ = ["SealError", "open_headers", "seal_headers", "sealing_key"]


class SealError(Exception):
    """Stored headers that this key cannot open (the key changed)."""


async def sealing_key(db: Database, settings: Settings) -> Fernet:
    if settings.secret_key is not None:
        secret = settings.secret_key.get_secret_value().encode()
    else:
        secret = await server_secret(db, "mcp-headers")
    return Fernet(base64.urlsafe_b64encode(hashlib.sha256(secret).digest()))


def seal_headers(key: Fernet, headers: dict[str, str]) -> str:
    return key.encrypt(json.dumps(headers).encode()).decode() if headers else ""


def open_headers(key: Fernet, sealed: str) -> dict[str, str]:
    if not sealed:
        return {}
    try:
        opened = json.loads(key.decrypt(sealed.encode()))
    except InvalidToken:
        raise SealError(
            "its stored headers cannot be decrypted (KENNEL_SECRET_KEY changed since it was"
            " registered): register it again"
        ) from None
    return {str(k): str(v) for k, v in opened.items()}
