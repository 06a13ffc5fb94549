"""Secrets at rest: Fernet with a key from settings.encryption_key, or derived from secret_key."""

from __future__ import annotations

import base64
import binascii
from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from pytake.config import Settings

__all__ = ["SecretBox", "SecretUnreadable", "secret_box"]

_HKDF_INFO = b"pytake secrets at rest v1"


class SecretUnreadable(ValueError):
    """A stored secret could not be decrypted (the key changed, or the value is corrupt)."""


def _derive(material: str) -> bytes:
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_HKDF_INFO).derive(
        material.encode()
    )
    return base64.urlsafe_b64encode(key)


def _fernet_key(material: str) -> bytes:
    # A ready Fernet key (32 url-safe base64 bytes) is used as is; anything else is key material.
    try:
        if len(base64.urlsafe_b64decode(material.encode())) == 32:
            return material.encode()
    except (binascii.Error, ValueError):
        pass
    return _derive(material)


class SecretBox:
    """Encrypts and decrypts short secrets (tokens, app secrets, API keys) as text."""

    def __init__(self, material: str) -> None:
        self._fernet = Fernet(_fernet_key(material))

    def encrypt(self, plaintext: str) -> str:
        return self._fernet.encrypt(plaintext.encode()).decode()

    def decrypt(self, token: str) -> str:
        try:
            return self._fernet.decrypt(token.encode()).decode()
        except (InvalidToken, ValueError) as exc:
            raise SecretUnreadable(
                "stored secret cannot be decrypted with the current key"
            ) from exc


@lru_cache(maxsize=8)
def _box(material: str) -> SecretBox:
    return SecretBox(material)


def secret_box(settings: Settings) -> SecretBox:
    """The box for these settings: encryption_key when set, else derived from secret_key."""
    return _box(settings.encryption_key or settings.secret_key)
