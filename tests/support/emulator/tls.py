"""Key material: the TLS certificate the emulator serves and the certificate the app signs with.

Generating RSA keys costs tens of milliseconds, so each is made once per process and shared by
every emulator instance; only the files written from them are per instance.
"""

from __future__ import annotations

import datetime
import functools
import hashlib
import ssl
from dataclasses import dataclass
from pathlib import Path

import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

SERVER_NAMES = ("127.0.0.1", "localhost")


@dataclass(frozen=True)
class ServerTls:
    """A private CA and a leaf certificate for 127.0.0.1 and localhost signed by it."""

    ca_pem: bytes
    certificate_chain_pem: bytes
    private_key_pem: bytes

    def server_context(self, directory: str) -> ssl.SSLContext:
        """An SSLContext serving the leaf; ``directory`` holds the PEM files ssl insists on reading."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        chain_path = Path(directory) / "server-chain.pem"
        key_path = Path(directory) / "server-key.pem"
        chain_path.write_bytes(self.certificate_chain_pem)
        key_path.write_bytes(self.private_key_pem)
        context.load_cert_chain(chain_path, key_path)
        return context


@dataclass(frozen=True)
class AppCertificate:
    """The certificate registered on the emulated app registration, with its private key."""

    certificate_pem: str
    private_key_pem: str
    certificate_der: bytes

    @property
    def thumbprint(self) -> str:
        """SHA-1 of the DER certificate in upper-case hex, as the Azure portal shows it."""
        return hashlib.sha1(self.certificate_der).hexdigest().upper()  # noqa: S324 - Entra's x5t is SHA-1

    @property
    def thumbprint_sha256(self) -> str:
        return hashlib.sha256(self.certificate_der).hexdigest().upper()

    def public_key(self) -> rsa.RSAPublicKey:
        public_key = x509.load_der_x509_certificate(self.certificate_der).public_key()
        if not isinstance(public_key, rsa.RSAPublicKey):
            raise TypeError("the app certificate must hold an RSA key")
        return public_key


@functools.cache
def server_tls() -> ServerTls:
    authority = trustme.CA(organization_name="TA-mde-file-alerts test CA")
    leaf = authority.issue_cert(*SERVER_NAMES)
    return ServerTls(
        ca_pem=authority.cert_pem.bytes(),
        certificate_chain_pem=b"".join(blob.bytes() for blob in leaf.cert_chain_pems),
        private_key_pem=leaf.private_key_pem.bytes(),
    )


@functools.cache
def app_certificate() -> AppCertificate:
    private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "TA-mde-file-alerts emulator app")])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(private_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=365))
        .sign(private_key, hashes.SHA256())
    )
    return AppCertificate(
        certificate_pem=certificate.public_bytes(serialization.Encoding.PEM).decode("ascii"),
        private_key_pem=private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode("ascii"),
        certificate_der=certificate.public_bytes(serialization.Encoding.DER),
    )
