"""The server's TLS context, and a self-signed certificate for a server that has none yet.

A fresh installation must speak TLS at once (implicit-TLS ports and STARTTLS/STLS), so when
``tls.cert_file``/``tls.key_file`` are empty a certificate is generated on first start into
``data_dir/tls`` (an EC P-256 key: fast handshakes, small; key file mode 0600) and reused on
later starts, renewed only when it is about to expire. Clients will warn about it; production
sites point the settings at a real certificate (e.g. from Let's Encrypt).

The context allows TLS 1.2 and 1.3 only, with OpenSSL's default cipher list for the server
purpose (forward-secret AEAD suites), no compression and no renegotiation.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import ssl
from pathlib import Path

__all__ = ["TlsSetupError", "build_server_context", "ensure_self_signed"]

_VALIDITY = dt.timedelta(days=730)
_RENEW_BEFORE = dt.timedelta(days=14)


class TlsSetupError(Exception):
    """The certificate or key cannot be read or used; the message says which file."""


def ensure_self_signed(data_dir: Path, hostname: str) -> tuple[Path, Path]:
    """Return (cert, key) paths under ``data_dir/tls``, generating them if missing or expiring."""
    folder = data_dir / "tls"
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    if cert_path.exists() and key_path.exists() and not _expiring(cert_path):
        return cert_path, key_path
    try:
        folder.mkdir(parents=True, exist_ok=True)
        cert_pem, key_pem = _generate(hostname)
        _write(key_path, key_pem, 0o600)
        _write(cert_path, cert_pem, 0o644)
    except OSError as exc:
        raise TlsSetupError(f"cannot write a self-signed certificate to {folder}: "
                            f"{exc.strerror or exc}") from exc
    return cert_path, key_path


def build_server_context(cert_file: Path | str, key_file: Path | str) -> ssl.SSLContext:
    """A server-side context for ``cert_file``/``key_file`` (PEM)."""
    for path in (cert_file, key_file):
        if not os.access(path, os.R_OK):
            reason = "does not exist" if not os.path.exists(path) else "is not readable"
            raise TlsSetupError(f"TLS file {path} {reason}")
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.options |= ssl.OP_NO_COMPRESSION | ssl.OP_CIPHER_SERVER_PREFERENCE
    ctx.options |= getattr(ssl, "OP_NO_RENEGOTIATION", 0)
    try:
        ctx.load_cert_chain(str(cert_file), str(key_file))
    except (ssl.SSLError, OSError, ValueError) as exc:
        raise TlsSetupError(
            f"cannot load TLS certificate {cert_file} with key {key_file}: {exc}"
        ) from exc
    return ctx


# -- generation (cryptography is imported only when a certificate must be made or checked) --

def _expiring(cert_path: Path) -> bool:
    from cryptography import x509

    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    except (OSError, ValueError):
        return True  # unreadable or corrupt: make a new one
    return cert.not_valid_after_utc - dt.datetime.now(dt.UTC) < _RENEW_BEFORE


def _generate(hostname: str) -> tuple[bytes, bytes]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname)])
    dns = list(dict.fromkeys([hostname, "localhost"]))
    sans: list[x509.GeneralName] = [x509.DNSName(d) for d in dns]
    sans += [x509.IPAddress(ipaddress.ip_address(a)) for a in ("127.0.0.1", "::1")]
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + _VALIDITY)
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]),
                       critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


def _write(path: Path, data: bytes, mode: int) -> None:
    """Write atomically (temp file + rename) so a crash never leaves half a key behind."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.chmod(tmp, mode)
    os.replace(tmp, path)
