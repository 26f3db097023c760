"""Make and digest API tokens."""

from __future__ import annotations

import hashlib
import secrets


def new_token() -> str:
    """Return a fresh random token for a client to keep."""
    return secrets.token_urlsafe(32)


def token_digest(token: str) -> str:
    """Return the digest under which a token is stored and looked up."""
    return hashlib.sha256(token.encode()).hexdigest()
