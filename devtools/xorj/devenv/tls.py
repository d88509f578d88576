"""A local certificate authority and a server certificate for the development Postgres.

The CA's key signs the server certificate and is then thrown away: it is never written, so nothing
can issue another certificate this CA vouches for. Clients trust ``ca.crt`` and check the server's name
against the certificate (``sslmode=verify-full``). The server's key is readable by its owner only, as
Postgres requires.
"""

from __future__ import annotations

import datetime
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from xorj.devenv.files import write_private

VALIDITY = datetime.timedelta(days=825)


@dataclass(frozen=True)
class ServerCertificate:
    ca_file: Path
    cert_file: Path
    key_file: Path


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "xorj development"),
                      x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _alt_name(host: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        return x509.DNSName(host)


def issue(hosts: Sequence[str], *, now: datetime.datetime | None = None) -> tuple[bytes, bytes, bytes]:
    """A new CA and a server certificate for ``hosts`` (IPs or DNS names): (ca PEM, cert PEM, key PEM)."""
    now = now or datetime.datetime.now(datetime.UTC)
    start, end = now - datetime.timedelta(minutes=5), now + VALIDITY
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name("xorj development ledger CA")
    ca = (
        x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(start).not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                     crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder().subject_name(_name(hosts[0])).issuer_name(ca_name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(start).not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName([_alt_name(h) for h in hosts]), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return ca.public_bytes(serialization.Encoding.PEM), cert.public_bytes(serialization.Encoding.PEM), key_pem


def ensure_server_certificate(directory: Path, hosts: Sequence[str]) -> ServerCertificate:
    """``directory``'s CA and server certificate, issued once for ``hosts`` (re-issued when missing,
    expiring within a day, or not naming every host)."""
    found = ServerCertificate(directory / "ca.crt", directory / "server.crt", directory / "server.key")
    if not _usable(found, hosts):
        ca_pem, cert_pem, key_pem = issue(hosts)
        write_private(found.key_file, key_pem)
        found.cert_file.write_bytes(cert_pem)
        found.ca_file.write_bytes(ca_pem)
    return found


def _usable(found: ServerCertificate, hosts: Sequence[str]) -> bool:
    try:
        cert = x509.load_pem_x509_certificate(found.cert_file.read_bytes())
        if not (found.key_file.exists() and found.ca_file.exists()):
            return False
    except (OSError, ValueError):
        return False
    if cert.not_valid_after_utc < datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=1):
        return False
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    present = {str(v) for v in names.get_values_for_type(x509.IPAddress)} | set(names.get_values_for_type(x509.DNSName))
    return all(h in present for h in hosts)
