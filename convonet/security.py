"""PIN and password hashing. PINs are keyed hashes (lookup-able), passwords are salted scrypt."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets


def pin_hash(pin: str, pepper: str) -> str:
    return hmac.new(pepper.encode(), pin.encode(), hashlib.sha256).hexdigest()


def is_valid_pin_format(pin: str) -> bool:
    # ASCII only: "١٢٣٤" and "²³¹⁴" are digits to str.isdigit, but no PIN anyone was given.
    return pin.isascii() and pin.isdigit() and 4 <= len(pin) <= 8


_SCRYPT = {"n": 2**14, "r": 8, "p": 1}


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, dklen=32, **_SCRYPT)
    return "scrypt$" + base64.b64encode(salt).decode() + "$" + base64.b64encode(digest).decode()


def verify_password(password: str, stored: str) -> bool:
    try:
        scheme, salt_b64, digest_b64 = stored.split("$")
    except ValueError:
        return False
    if scheme != "scrypt":
        return False
    salt = base64.b64decode(salt_b64)
    digest = hashlib.scrypt(password.encode(), salt=salt, dklen=32, **_SCRYPT)
    return hmac.compare_digest(digest, base64.b64decode(digest_b64))
