"""TLS for SMTP connections: the client context, certificate pinning, and a description of
the server's certificate for the connection test.

Verification is always on and TLS 1.2 is the minimum. A private CA is *added* to the system
trust store. A pinned SHA-256 fingerprint is the one case where the chain check is switched
off, because the pin is stricter than the chain: the exact certificate is required, and
:func:`verify_pin` must run right after every handshake, before anything else is sent.
"""

from __future__ import annotations

import hashlib
import os
import ssl
import tempfile
from pathlib import Path

from cryptography import x509

from visitmail.domain.diagnosis import StepName
from visitmail.domain.smtp_errors import Detail, SmtpCertificateRejected, SmtpTlsFailed
from visitmail.domain.smtp_settings import SmtpSecrets, TlsOptions


def build_context(options: TlsOptions, secrets: SmtpSecrets) -> ssl.SSLContext:
    """A client context for ``options``.

    Raises :class:`SmtpTlsFailed` (stage ``tls``) when the custom CA or the client
    certificate / key cannot be loaded; the message never quotes the key.
    """
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if options.ca_pem:
        try:
            context.load_verify_locations(cadata=options.ca_pem)
        except (ssl.SSLError, ValueError) as e:
            raise SmtpTlsFailed(
                "The custom CA certificate could not be read.",
                stage=StepName.TLS,
                fix="Paste the CA certificate as PEM text (-----BEGIN CERTIFICATE----- ...).",
            ) from e
    if options.pin_hex:
        # Pin mode: the chain and host name are not checked by OpenSSL; verify_pin() compares
        # the exact certificate right after the handshake instead.
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if options.client_cert_pem:
        _load_client_certificate(context, options.client_cert_pem, secrets.client_key_pem)
    return context


def probe_context() -> ssl.SSLContext:
    """A context that accepts any certificate, used *only* to read the server's certificate
    so its fingerprint can be shown after verification failed. Nothing is sent over it."""
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def _load_client_certificate(context: ssl.SSLContext, cert_pem: str, key_pem: str | None) -> None:
    if not key_pem:
        raise SmtpTlsFailed(
            "A client certificate is set but its private key is missing.",
            stage=StepName.TLS,
            fix="Enter the client certificate's private key, or remove the client certificate.",
        )
    # load_cert_chain only reads files: write both to a private directory (0700, files 0600)
    # and remove them as soon as OpenSSL has read them.
    with tempfile.TemporaryDirectory(prefix="visitmail-tls-") as directory:
        cert_path = _write_private(Path(directory) / "cert.pem", cert_pem)
        key_path = _write_private(Path(directory) / "key.pem", key_pem)
        try:
            context.load_cert_chain(str(cert_path), str(key_path))
        except (ssl.SSLError, ValueError) as e:
            raise SmtpTlsFailed(
                "The client certificate or its private key could not be loaded.",
                stage=StepName.TLS,
                fix="Check that the certificate and the unencrypted private key are PEM text "
                "and belong together.",
            ) from e


def _write_private(path: Path, text: str) -> Path:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="ascii", errors="replace") as handle:
        handle.write(text)
    return path


def fingerprint(der: bytes) -> str:
    """SHA-256 of a DER certificate as colon-separated upper-case hex (what admins pin)."""
    digest = hashlib.sha256(der).hexdigest().upper()
    return ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))


def peer_certificate(ssl_object: ssl.SSLObject | ssl.SSLSocket | None) -> bytes | None:
    """The server's certificate (DER) on an established TLS connection, if any."""
    if ssl_object is None:
        return None
    return ssl_object.getpeercert(binary_form=True)


def verify_pin(ssl_object: ssl.SSLObject | ssl.SSLSocket | None, options: TlsOptions) -> None:
    """In pin mode, refuse the connection unless the server's certificate has exactly the
    pinned SHA-256. A no-op without a pin. Raises :class:`SmtpCertificateRejected`."""
    pin = options.pin_hex
    if pin is None:
        return
    der = peer_certificate(ssl_object)
    actual = hashlib.sha256(der).hexdigest() if der else None
    if actual != pin:
        details: dict[str, Detail] = {}
        if der:
            details["certificate_sha256"] = fingerprint(der)
        raise SmtpCertificateRejected(
            "The server's certificate does not match the pinned SHA-256 fingerprint, so the "
            "connection was refused.",
            stage=StepName.TLS,
            fix="If the provider renewed the certificate, confirm the new fingerprint with them "
            "and pin it (shown in the details); otherwise something intercepts the connection.",
            details=details,
        )


def describe(ssl_object: ssl.SSLObject | ssl.SSLSocket | None) -> dict[str, Detail]:
    """Protocol version, cipher, subject, issuer, expiry and fingerprint of the peer's
    certificate, for the report. Works in pin mode too (parses the DER itself)."""
    if ssl_object is None:
        return {}
    details: dict[str, Detail] = {}
    version = ssl_object.version()
    if version:
        details["protocol"] = version
    cipher = ssl_object.cipher()
    if cipher:
        details["cipher"] = cipher[0]
    der = peer_certificate(ssl_object)
    if der:
        details.update(describe_certificate(der))
    return details


def describe_certificate(der: bytes) -> dict[str, Detail]:
    """Subject, issuer, expiry (ISO 8601, UTC) and SHA-256 fingerprint of a DER certificate."""
    details: dict[str, Detail] = {"certificate_sha256": fingerprint(der)}
    try:
        cert = x509.load_der_x509_certificate(der)
    except ValueError:
        return details
    details["subject"] = cert.subject.rfc4514_string()
    details["issuer"] = cert.issuer.rfc4514_string()
    details["not_after"] = cert.not_valid_after_utc.isoformat()
    return details
