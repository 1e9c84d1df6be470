"""Certificate authorities and certificates made at test time, with `cryptography`.

Nothing secret is committed and nothing in the repository expires: each test run makes its own CA,
a server certificate for localhost and 127.0.0.1, and client certificates (valid or expired).
"""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def _key_pem(key) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _name(cn: str, org: str | None = None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, cn)]
    if org:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, org))
    return x509.Name(attrs)


@dataclass
class Leaf:
    cert_pem: bytes
    key_pem: bytes

    def write(self, directory: Path, name: str) -> tuple[Path, Path]:
        cert, key = directory / f"{name}.crt", directory / f"{name}.key"
        cert.write_bytes(self.cert_pem)
        key.write_bytes(self.key_pem)
        return cert, key


class CA:
    def __init__(self, cn: str):
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.name = _name(cn, "flightbatch tests")
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(self.name)
            .issuer_name(self.name)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(_now() - datetime.timedelta(hours=1))
            .not_valid_after(_now() + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
                    key_encipherment=False, data_encipherment=False, key_agreement=False,
                    encipher_only=False, decipher_only=False,
                ),
                critical=True,
            )
            .sign(self.key, hashes.SHA256())
        )
        self.pem = self.cert.public_bytes(serialization.Encoding.PEM)

    def write(self, directory: Path, name: str) -> Path:
        path = directory / f"{name}.crt"
        path.write_bytes(self.pem)
        return path

    def _issue(self, subject: x509.Name, usage, not_before, not_after, san=None) -> Leaf:
        key = ec.generate_private_key(ec.SECP256R1())
        b = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(self.name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before)
            .not_valid_after(not_after)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        )
        if san is not None:
            b = b.add_extension(x509.SubjectAlternativeName(san), critical=False)
        cert = b.sign(self.key, hashes.SHA256())
        return Leaf(cert.public_bytes(serialization.Encoding.PEM), _key_pem(key))

    def server(self) -> Leaf:
        san = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
        return self._issue(
            _name("localhost"), ExtendedKeyUsageOID.SERVER_AUTH,
            _now() - datetime.timedelta(hours=1), _now() + datetime.timedelta(days=1), san,
        )

    def client(self, cn: str, org: str) -> Leaf:
        return self._issue(
            _name(cn, org), ExtendedKeyUsageOID.CLIENT_AUTH,
            _now() - datetime.timedelta(hours=1), _now() + datetime.timedelta(days=1),
        )

    def expired_client(self, cn: str, org: str) -> Leaf:
        return self._issue(
            _name(cn, org), ExtendedKeyUsageOID.CLIENT_AUTH,
            _now() - datetime.timedelta(days=2), _now() - datetime.timedelta(hours=1),
        )
