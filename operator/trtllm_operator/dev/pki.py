"""Certificates and keys for the local control plane (a CA, a serving cert, client certs, SA keys).

Uses ``cryptography`` rather than shelling out to openssl: typed, no dependency on the host's
openssl CLI or its config, and identical on every machine.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

_VALID = dt.timedelta(days=365)


@dataclass(frozen=True)
class Issued:
    cert: Path
    key: Path


def _name(common: str, org: str | None = None) -> x509.Name:
    parts = [x509.NameAttribute(NameOID.COMMON_NAME, common)]
    if org:
        parts.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, org))
    return x509.Name(parts)


def _write_key(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey, path: Path) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    path.chmod(0o600)


def _builder(
    subject: x509.Name, issuer: x509.Name, public: ec.EllipticCurvePublicKey
) -> x509.CertificateBuilder:
    now = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + _VALID)
    )


class Authority:
    """A throwaway cluster CA that issues the serving and client certificates."""

    def __init__(self, directory: Path, *, reuse: bool = False) -> None:
        """A new CA in ``directory``; ``reuse=True`` loads the one already there (add-ons issue their
        certificates from the running cluster's CA)."""
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self.cert_path = directory / "ca.crt"
        self._name = _name("trtllm-operator-local-ca")
        if reuse:
            loaded = serialization.load_pem_private_key((directory / "ca.key").read_bytes(), None)
            if not isinstance(loaded, ec.EllipticCurvePrivateKey):
                raise TypeError(f"{directory / 'ca.key'} is not the EC key this module writes")
            self._key = loaded
            return
        self._key = ec.generate_private_key(ec.SECP256R1())
        cert = (
            _builder(self._name, self._name, self._key.public_key())
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(True, False, False, False, False, True, True, False, False), critical=True
            )
            .sign(self._key, hashes.SHA256())
        )
        self.cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        _write_key(self._key, directory / "ca.key")

    @classmethod
    def load(cls, directory: Path) -> Authority:
        """The authority already written to ``directory`` (the running cluster's CA), to issue more."""
        self = cls.__new__(cls)
        self.dir, self.cert_path = directory, directory / "ca.crt"
        key = serialization.load_pem_private_key((directory / "ca.key").read_bytes(), password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise TypeError(f"{directory / 'ca.key'} is not an EC key")
        self._key = key
        self._name = x509.load_pem_x509_certificate(self.cert_path.read_bytes()).subject
        return self

    def issue(
        self, stem: str, common: str, org: str | None = None, *, hosts: list[str] | None = None
    ) -> Issued:
        """A leaf certificate: server auth when ``hosts`` are given, client auth otherwise."""
        key = ec.generate_private_key(ec.SECP256R1())
        usage = ExtendedKeyUsageOID.SERVER_AUTH if hosts else ExtendedKeyUsageOID.CLIENT_AUTH

        builder = (
            _builder(_name(common, org), self._name, key.public_key())
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        )
        if hosts:
            sans: list[x509.GeneralName] = []
            for host in hosts:
                try:
                    sans.append(x509.IPAddress(ipaddress.ip_address(host)))
                except ValueError:
                    sans.append(x509.DNSName(host))
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        cert = builder.sign(self._key, hashes.SHA256())
        issued = Issued(self.dir / f"{stem}.crt", self.dir / f"{stem}.key")
        issued.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        _write_key(key, issued.key)
        return issued


def service_account_keys(directory: Path) -> tuple[Path, Path]:
    """RSA key pair that signs service-account tokens: (private, public)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private, public = directory / "sa.key", directory / "sa.pub"
    _write_key(key, private)
    public.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return private, public
