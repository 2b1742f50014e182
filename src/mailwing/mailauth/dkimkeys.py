"""DKIM signing keys on disk: generation, the active selector, the DNS record to publish.

Layout (under ``server.data_dir``): ``dkim/<domain>/<selector>.key`` holds the private key
in PEM (RSA as PKCS#1, what dkimpy reads; Ed25519 as PKCS#8), mode 0600, in a 0700 folder;
``dkim/<domain>/selector`` names the selector used for signing (the latest ``keygen``), so
a new key can be published before it is switched to and the old one stays until removed.

Algorithms: ``rsa`` (2048 bits, rsa-sha256, RFC 6376 section 3.3) and ``ed25519``
(ed25519-sha256, RFC 8463; the public key in DNS is the raw 32 octets, section 4).
The TXT record (RFC 6376 section 3.6.1) is printed as master-file text, split into strings
of at most 255 octets (RFC 1035 section 3.3.14; RFC 6376 section 3.6.2.2 joins them).

``cryptography`` is imported by the functions that use it, not by the module: every server
start imports this module (through the inbound checks), while only signing, key generation
and the DNS page need the library (about 30 modules; issue #12's embedded start-up time).
"""

from __future__ import annotations

import base64
import os
import re
from dataclasses import dataclass
from pathlib import Path

__all__ = ["ALGORITHMS", "DkimKey", "DkimKeyError", "active_key", "dns_record", "generate_key",
           "key_dir", "list_keys"]

ALGORITHMS = ("rsa", "ed25519")
RSA_BITS = 2048
_SELECTOR = re.compile(r"^[a-z0-9](?:[a-z0-9\-]{0,61}[a-z0-9])?(?:\.[a-z0-9\-]+)*$")


class DkimKeyError(ValueError):
    """A DKIM key cannot be made or read; the message says why."""


@dataclass(frozen=True, slots=True)
class DkimKey:
    domain: str
    selector: str
    algorithm: str  # "rsa" or "ed25519"
    path: Path
    private_pem: bytes

    @property
    def signature_algorithm(self) -> bytes:
        return b"rsa-sha256" if self.algorithm == "rsa" else b"ed25519-sha256"

    def dkimpy_private(self) -> bytes:
        """The key in the form dkimpy's signer takes: PEM for RSA, base64 seed for Ed25519."""
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ed25519

        if self.algorithm == "rsa":
            return self.private_pem
        key = serialization.load_pem_private_key(self.private_pem, None)
        assert isinstance(key, ed25519.Ed25519PrivateKey)
        raw = key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                                serialization.NoEncryption())
        return base64.b64encode(raw)

    def public_b64(self) -> str:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ed25519

        key = serialization.load_pem_private_key(self.private_pem, None)
        if isinstance(key, ed25519.Ed25519PrivateKey):
            raw = key.public_key().public_bytes(serialization.Encoding.Raw,
                                                serialization.PublicFormat.Raw)
        else:
            raw = key.public_key().public_bytes(serialization.Encoding.DER,
                                                serialization.PublicFormat.SubjectPublicKeyInfo)
        return base64.b64encode(raw).decode()

    def txt_value(self) -> str:
        """The record's text: ``v=DKIM1; k=rsa; p=...``."""
        return f"v=DKIM1; k={self.algorithm}; p={self.public_b64()}"


def key_dir(data_dir: Path, domain: str) -> Path:
    return Path(data_dir) / "dkim" / domain.lower().rstrip(".")


def _check(domain: str, selector: str) -> None:
    if not domain or "/" in domain or domain.startswith(".") or not _SELECTOR.match(domain):
        raise DkimKeyError(f"{domain!r} is not a domain name")
    if not _SELECTOR.match(selector):
        raise DkimKeyError(f"{selector!r} is not a valid selector (letters, digits, hyphens)")


def generate_key(data_dir: Path, domain: str, selector: str, algorithm: str = "rsa",
                 *, activate: bool = True) -> DkimKey:
    """Make a new key file (never overwrites one) and, with ``activate``, sign with it."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

    domain, selector = domain.lower().rstrip("."), selector.lower()
    _check(domain, selector)
    if algorithm not in ALGORITHMS:
        raise DkimKeyError(f"algorithm must be one of {', '.join(ALGORITHMS)}")
    folder = key_dir(data_dir, domain)
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = folder / f"{selector}.key"
    if algorithm == "rsa":
        pem = rsa.generate_private_key(65537, RSA_BITS).private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption())
    else:
        pem = ed25519.Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption())
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise DkimKeyError(f"{path} exists; choose another selector") from None
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)
    if activate:
        (folder / "selector").write_text(selector + "\n")
    return DkimKey(domain, selector, algorithm, path, pem)


def _load(domain: str, path: Path) -> DkimKey:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    pem = path.read_bytes()
    try:
        key = serialization.load_pem_private_key(pem, None)
    except ValueError as exc:
        raise DkimKeyError(f"{path}: not a PEM private key") from exc
    algorithm = "ed25519" if isinstance(key, ed25519.Ed25519PrivateKey) else "rsa"
    return DkimKey(domain, path.stem, algorithm, path, pem)


def active_key(data_dir: Path, domain: str) -> DkimKey | None:
    """The key to sign ``domain``'s mail with, or None (no key, or an unreadable one)."""
    folder = key_dir(data_dir, domain)
    try:
        selector = (folder / "selector").read_text().strip()
        return _load(domain.lower().rstrip("."), folder / f"{selector}.key")
    except (OSError, DkimKeyError):
        return None


def list_keys(data_dir: Path) -> list[tuple[DkimKey, bool]]:
    """Every key with whether it is the active one, ordered by domain and selector."""
    root = Path(data_dir) / "dkim"
    out: list[tuple[DkimKey, bool]] = []
    for folder in sorted(p for p in root.glob("*") if p.is_dir()) if root.is_dir() else []:
        try:
            active = (folder / "selector").read_text().strip()
        except OSError:
            active = ""
        for path in sorted(folder.glob("*.key")):
            try:
                out.append((_load(folder.name, path), path.stem == active))
            except (OSError, DkimKeyError):
                continue
    return out


def dns_record(key: DkimKey) -> str:
    """``sel._domainkey.example.org. IN TXT ( "v=DKIM1; k=rsa; p=..." "..." )``."""
    value = key.txt_value()
    parts = [value[i:i + 255] for i in range(0, len(value), 255)]
    strings = " ".join(f'"{p}"' for p in parts)
    return f"{key.selector}._domainkey.{key.domain}. IN TXT {strings}"
