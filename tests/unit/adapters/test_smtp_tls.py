"""TLS context, pinning and certificate description for SMTP (no network)."""

from __future__ import annotations

import hashlib
import os
import ssl
import tempfile
from pathlib import Path

import pytest
import trustme

from visitmail.adapters.smtp import tls
from visitmail.domain.diagnosis import StepName
from visitmail.domain.smtp_errors import SmtpCertificateRejected, SmtpTlsFailed
from visitmail.domain.smtp_settings import SmtpSecrets, TlsOptions


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def leaf(ca: trustme.CA) -> trustme.LeafCert:
    return ca.issue_cert("smtp.example.com")


def der_of(leaf: trustme.LeafCert) -> bytes:
    return ssl.PEM_cert_to_DER_cert(leaf.cert_chain_pems[0].bytes().decode())


class FakeSslObject:
    def __init__(self, der: bytes | None) -> None:
        self.der = der

    def getpeercert(self, binary_form: bool = False) -> bytes | None:
        return self.der

    def version(self) -> str:
        return "TLSv1.3"

    def cipher(self) -> tuple[str, str, int]:
        return ("TLS_AES_256_GCM_SHA384", "TLSv1.3", 256)


def test_default_context_verifies_and_requires_tls12() -> None:
    context = tls.build_context(TlsOptions(), SmtpSecrets())
    assert context.verify_mode is ssl.CERT_REQUIRED
    assert context.check_hostname is True
    assert context.minimum_version is ssl.TLSVersion.TLSv1_2


def test_custom_ca_is_added_to_the_trust_store(ca: trustme.CA) -> None:
    before = tls.build_context(TlsOptions(), SmtpSecrets()).cert_store_stats()["x509_ca"]
    context = tls.build_context(TlsOptions(ca_pem=ca.cert_pem.bytes().decode()), SmtpSecrets())
    assert context.cert_store_stats()["x509_ca"] == before + 1
    assert context.verify_mode is ssl.CERT_REQUIRED


def test_unreadable_ca_fails_at_tls() -> None:
    bad = "-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n"
    with pytest.raises(SmtpTlsFailed) as info:
        tls.build_context(TlsOptions(ca_pem=bad), SmtpSecrets())
    assert info.value.stage is StepName.TLS


def test_pin_mode_defers_verification_to_the_pin() -> None:
    context = tls.build_context(TlsOptions(pinned_sha256="ab" * 32), SmtpSecrets())
    assert context.verify_mode is ssl.CERT_NONE
    assert context.check_hostname is False
    assert context.minimum_version is ssl.TLSVersion.TLSv1_2


def test_client_certificate_is_loaded_and_temp_files_removed(leaf: trustme.LeafCert) -> None:
    before = set(Path(tempfile.gettempdir()).glob("visitmail-tls-*"))
    options = TlsOptions(client_cert_pem=leaf.cert_chain_pems[0].bytes().decode())
    secrets = SmtpSecrets(client_key_pem=leaf.private_key_pem.bytes().decode())
    tls.build_context(options, secrets)
    assert set(Path(tempfile.gettempdir()).glob("visitmail-tls-*")) == before


def test_key_file_is_private_while_it_exists(
    leaf: trustme.LeafCert, monkeypatch: pytest.MonkeyPatch
) -> None:
    modes: list[int] = []
    original = ssl.SSLContext.load_cert_chain

    def spy(self: ssl.SSLContext, certfile: str, keyfile: str | None = None) -> None:
        assert keyfile is not None
        modes.append(os.stat(keyfile).st_mode & 0o777)
        modes.append(os.stat(os.path.dirname(keyfile)).st_mode & 0o777)
        original(self, certfile, keyfile)

    monkeypatch.setattr(ssl.SSLContext, "load_cert_chain", spy)
    options = TlsOptions(client_cert_pem=leaf.cert_chain_pems[0].bytes().decode())
    tls.build_context(options, SmtpSecrets(client_key_pem=leaf.private_key_pem.bytes().decode()))
    assert modes == [0o600, 0o700]


def test_mismatched_client_key_fails_without_quoting_the_key(
    leaf: trustme.LeafCert, ca: trustme.CA
) -> None:
    other_key = ca.issue_cert("other.example.com").private_key_pem.bytes().decode()
    options = TlsOptions(client_cert_pem=leaf.cert_chain_pems[0].bytes().decode())
    with pytest.raises(SmtpTlsFailed) as info:
        tls.build_context(options, SmtpSecrets(client_key_pem=other_key))
    body = other_key.splitlines()[1]
    assert body not in str(info.value)
    assert body not in (info.value.fix or "")


def test_client_certificate_without_key_is_refused(leaf: trustme.LeafCert) -> None:
    options = TlsOptions(client_cert_pem=leaf.cert_chain_pems[0].bytes().decode())
    with pytest.raises(SmtpTlsFailed, match="private key is missing"):
        tls.build_context(options, SmtpSecrets())


def test_fingerprint_is_colon_separated_sha256(leaf: trustme.LeafCert) -> None:
    der = der_of(leaf)
    shown = tls.fingerprint(der)
    assert shown.replace(":", "").lower() == hashlib.sha256(der).hexdigest()
    assert len(shown.split(":")) == 32


@pytest.mark.parametrize("style", ["plain", "colons", "prefixed", "upper"])
def test_verify_pin_accepts_the_exact_certificate(leaf: trustme.LeafCert, style: str) -> None:
    der = der_of(leaf)
    digest = hashlib.sha256(der).hexdigest()
    pin = {
        "plain": digest,
        "colons": tls.fingerprint(der),
        "prefixed": "sha256:" + digest,
        "upper": digest.upper(),
    }[style]
    tls.verify_pin(FakeSslObject(der), TlsOptions(pinned_sha256=pin))  # type: ignore[arg-type]


def test_verify_pin_refuses_another_certificate(leaf: trustme.LeafCert) -> None:
    with pytest.raises(SmtpCertificateRejected) as info:
        tls.verify_pin(FakeSslObject(der_of(leaf)), TlsOptions(pinned_sha256="00" * 32))  # type: ignore[arg-type]
    assert info.value.stage is StepName.TLS
    assert info.value.details["certificate_sha256"] == tls.fingerprint(der_of(leaf))


def test_verify_pin_refuses_a_missing_certificate() -> None:
    with pytest.raises(SmtpCertificateRejected):
        tls.verify_pin(FakeSslObject(None), TlsOptions(pinned_sha256="00" * 32))  # type: ignore[arg-type]


def test_verify_pin_is_a_no_op_without_a_pin() -> None:
    tls.verify_pin(None, TlsOptions())


def test_describe_reports_protocol_subject_issuer_expiry(leaf: trustme.LeafCert) -> None:
    details = tls.describe(FakeSslObject(der_of(leaf)))  # type: ignore[arg-type]
    assert details["protocol"] == "TLSv1.3"
    assert details["cipher"] == "TLS_AES_256_GCM_SHA384"
    assert "trustme" in str(details["subject"])
    assert "Testing CA" in str(details["issuer"])
    assert str(details["not_after"]).startswith("3000-01-01")
    assert details["certificate_sha256"] == tls.fingerprint(der_of(leaf))


def test_probe_context_accepts_anything_but_old_tls() -> None:
    context = tls.probe_context()
    assert context.verify_mode is ssl.CERT_NONE
    assert context.minimum_version is ssl.TLSVersion.TLSv1_2
