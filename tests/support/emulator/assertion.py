"""Checks a client assertion (RFC 7523 JWT) the way Entra ID does, with cryptography only.

Deliberately independent of PyJWT, which the code under test uses to sign: a shared bug in
encoding and decoding would otherwise go unnoticed.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from tests.support.emulator.tls import AppCertificate

# Entra tolerates a little clock skew between the client and itself.
CLOCK_SKEW = 300.0


class AssertionProblem(Exception):
    """Why an assertion was refused, as Entra would say it."""

    def __init__(self, error: str, code: int, description: str, *, status: int = 401) -> None:
        super().__init__(description)
        self.error = error
        self.code = code
        self.description = description
        self.status = status


def _b64decode(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def _malformed(detail: str) -> AssertionProblem:
    return AssertionProblem(
        "invalid_request", 50027, f"JWT token is invalid or malformed: {detail}.", status=400
    )


def verify_client_assertion(
    assertion: str, *, certificate: AppCertificate, client_id: str, token_endpoint: str, now: float
) -> dict[str, Any]:
    """The assertion's claims when it is valid; raises ``AssertionProblem`` otherwise."""
    parts = assertion.split(".")
    if len(parts) != 3:
        raise _malformed("it does not have three parts")
    try:
        header = json.loads(_b64decode(parts[0]))
        claims = json.loads(_b64decode(parts[1]))
        signature = _b64decode(parts[2])
    except (ValueError, binascii.Error) as error:
        raise _malformed("a part is not base64url-encoded JSON") from error
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise _malformed("the header or payload is not a JSON object")

    _check_key_identifier(header, certificate)
    _check_signature(header.get("alg"), f"{parts[0]}.{parts[1]}".encode("ascii"), signature, certificate)

    if claims.get("iss") != client_id or claims.get("sub") != client_id:
        raise AssertionProblem(
            "invalid_client",
            50012,
            "Client assertion contains an invalid issuer or subject; both must be the client id "
            f"'{client_id}'.",
        )
    if claims.get("aud") != token_endpoint:
        raise AssertionProblem(
            "invalid_client",
            50013,
            f"Assertion audience claim does not match the required value. The audience in the assertion was "
            f"'{claims.get('aud')}' and the expected audience is '{token_endpoint}'.",
        )
    expires = claims.get("exp")
    not_before = claims.get("nbf", claims.get("iat", now))
    if not isinstance(expires, (int, float)) or not isinstance(not_before, (int, float)):
        raise _malformed("exp, nbf and iat must be numbers")
    if expires + CLOCK_SKEW <= now or not_before - CLOCK_SKEW > now:
        raise AssertionProblem(
            "invalid_client",
            700024,
            f"Client assertion is not within its valid time range. Current time: {now:.0f}, "
            f"assertion valid from {not_before:.0f}, expiry time of assertion {expires:.0f}.",
        )
    return claims


def _check_key_identifier(header: dict[str, Any], certificate: AppCertificate) -> None:
    if "x5t#S256" in header:
        claimed, expected, label = header["x5t#S256"], certificate.thumbprint_sha256, "x5t#S256"
    elif "x5t" in header:
        claimed, expected, label = header["x5t"], certificate.thumbprint, "x5t"
    else:
        raise _malformed("the header names no certificate (x5t or x5t#S256)")
    try:
        presented = binascii.hexlify(_b64decode(str(claimed))).decode("ascii").upper()
    except (ValueError, binascii.Error) as error:
        raise _malformed(f"the {label} header is not base64url") from error
    if presented != expected:
        raise AssertionProblem(
            "invalid_client",
            700027,
            "The certificate with identifier used to sign the client assertion is not registered on "
            "application. [Reason - The key was not found., Thumbprint of key used by client: "
            f"'{presented}']",
        )


def _check_signature(algorithm: Any, signed: bytes, signature: bytes, certificate: AppCertificate) -> None:
    if algorithm == "RS256":
        scheme: padding.AsymmetricPadding = padding.PKCS1v15()
    elif algorithm == "PS256":
        scheme = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=hashes.SHA256.digest_size)
    else:
        raise _malformed(f"the signing algorithm {algorithm!r} is not RS256 or PS256")
    try:
        certificate.public_key().verify(signature, signed, scheme, hashes.SHA256())
    except InvalidSignature as error:
        raise AssertionProblem(
            "invalid_client", 700027, "Client assertion failed signature validation."
        ) from error
