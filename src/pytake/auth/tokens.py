"""Access tokens (JWT, HS256), opaque refresh tokens and API keys."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt

API_KEY_PREFIX = "pytake_live_"
_ALGORITHM = "HS256"


@dataclass(frozen=True)
class AccessClaims:
    user_id: uuid.UUID
    organization_id: uuid.UUID
    role: str


class InvalidToken(Exception):
    pass


def issue_access_token(
    secret: str, user_id: uuid.UUID, organization_id: uuid.UUID, role: str, ttl_seconds: int
) -> str:
    now = datetime.now(UTC)
    claims: dict[str, Any] = {
        "sub": str(user_id),
        "org": str(organization_id),
        "role": role,
        "typ": "access",
        "iat": now,
        "exp": now + timedelta(seconds=ttl_seconds),
        "jti": secrets.token_hex(8),
    }
    return jwt.encode(claims, secret, algorithm=_ALGORITHM)


def decode_access_token(secret: str, token: str) -> AccessClaims:
    try:
        claims = jwt.decode(
            token, secret, algorithms=[_ALGORITHM], options={"require": ["exp", "sub", "org"]}
        )
        if claims.get("typ") != "access":
            raise InvalidToken("not an access token")
        return AccessClaims(uuid.UUID(claims["sub"]), uuid.UUID(claims["org"]), claims["role"])
    except jwt.ExpiredSignatureError as exc:
        raise InvalidToken("token has expired") from exc
    except (jwt.PyJWTError, KeyError, ValueError) as exc:
        raise InvalidToken("token is invalid") from exc


def new_refresh_token() -> str:
    return "rt_" + secrets.token_urlsafe(32)


def new_api_key() -> str:
    return API_KEY_PREFIX + secrets.token_urlsafe(30)


def is_api_key(token: str) -> bool:
    return token.startswith(API_KEY_PREFIX)


def digest(token: str) -> str:
    """SHA-256 of a high-entropy secret; safe to store and to look up by."""
    return hashlib.sha256(token.encode()).hexdigest()
