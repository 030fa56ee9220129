"""Secrets handed out once and kept only as a hash: API tokens and enrollment tokens.

A secret reads a kind's prefix (``opt_``, ``oet_``) and 43 URL-safe characters (256 random bits): long
enough that a plain SHA-256 is the right hash (nothing to brute-force), and recognisable in a leaked log.
"""

import hashlib
import secrets


def new_secret(prefix: str) -> str:
    """A fresh secret of the kind ``prefix`` names."""
    return prefix + secrets.token_urlsafe(32)


def secret_digest(secret: str) -> str:
    """What is stored of ``secret``, and looked up when it is presented: its SHA-256, in hex."""
    return hashlib.sha256(secret.encode()).hexdigest()
