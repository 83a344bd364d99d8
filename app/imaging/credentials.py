"""Content Credentials (C2PA): sign an image with a manifest saying how it came to be, and tell
whether an image carries one. The operator's certificate chain and key sign; without them, a
development chain made on first use signs, and every manifest it signs says it is for testing."""

import contextlib
import datetime
import io
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import c2pa
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from app.imaging.codecs import MEDIA_TYPES

# IPTC digital source types (https://cv.iptc.org/newscodes/digitalsourcetype/).
TRAINED_ALGORITHMIC_MEDIA = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
COMPOSITE_WITH_TRAINED_ALGORITHMIC_MEDIA = (
    "http://cv.iptc.org/newscodes/digitalsourcetype/compositeWithTrainedAlgorithmicMedia"
)
# The assertion that says who signed: the operator, or the development chain (for testing).
SIGNER_ASSERTION = "dev.darkroom.credentials"
PARENT_INGREDIENT = "parent"
DEVELOPMENT_FILE = "c2pa-development.pem"
# The claim generator named in every manifest.
GENERATOR = "Darkroom"
# C2PA wants the end-entity certificate to be for signing documents: the key usage, and one of
# the extended key usages c2pa-rs accepts (email protection is the one every toolkit knows).
_SIGNING_USAGE = x509.KeyUsage(
    digital_signature=True,
    content_commitment=False,
    key_encipherment=False,
    data_encipherment=False,
    key_agreement=False,
    key_cert_sign=False,
    crl_sign=False,
    encipher_only=False,
    decipher_only=False,
)
_CA_USAGE = x509.KeyUsage(
    digital_signature=False,
    content_commitment=False,
    key_encipherment=False,
    data_encipherment=False,
    key_agreement=False,
    key_cert_sign=True,
    crl_sign=True,
    encipher_only=False,
    decipher_only=False,
)
# Reading and signing never reach the network: no remote manifests (an untrusted upload could
# name any URL), no OCSP.
OFFLINE = {"verify": {"remote_manifest_fetch": False, "ocsp_fetch": False}}
_EC_ALGORITHMS = {"secp256r1": "es256", "secp384r1": "es384", "secp521r1": "es512"}


class CredentialsError(Exception):
    """The signing certificate or key cannot be used."""


@dataclass(frozen=True)
class SigningCredentials:
    """A PEM certificate chain (the signer's certificate first, then its issuers), its PEM
    private key, the C2PA algorithm the key signs with, and whether the chain is the
    development one."""

    certificate_chain: bytes
    private_key: bytes
    algorithm: str
    for_testing: bool


@dataclass(frozen=True)
class Ingredient:
    """An image a new one was made from, with its own manifest if it carries one."""

    data: bytes
    format: str
    title: str


@dataclass(frozen=True)
class Claim:
    """What a manifest states: the image's title, its actions (C2PA action objects) and the
    image it was made from, if any (its parent: `c2pa.opened` refers to it)."""

    title: str
    actions: list[dict[str, Any]]
    parent: Ingredient | None = None
    facts: dict[str, Any] = field(default_factory=dict)


def load_credentials(
    certificate: Path | None, private_key: Path | None, data_dir: Path
) -> SigningCredentials:
    """The operator's credentials from their PEM files, or else the development chain kept in
    `data_dir` (made on first use)."""
    if certificate is not None and private_key is not None:
        chain, key = certificate.read_bytes(), private_key.read_bytes()
        return SigningCredentials(chain, key, signing_algorithm(key), for_testing=False)
    return development_credentials(data_dir)


def development_credentials(data_dir: Path) -> SigningCredentials:
    """The development chain in `data_dir`, made on first use. Processes sharing the directory
    share the chain: the first to write it wins, the others read it."""
    path = data_dir / DEVELOPMENT_FILE
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        _write_once(path, make_development_chain())
    key, chain = _split_key_and_chain(path.read_bytes())
    return SigningCredentials(chain, key, signing_algorithm(key), for_testing=True)


def development_trust_anchor(data_dir: Path) -> bytes:
    """The PEM certificate of the development chain's authority (to trust it when testing)."""
    _, chain = _split_key_and_chain((data_dir / DEVELOPMENT_FILE).read_bytes())
    return x509.load_pem_x509_certificates(chain)[-1].public_bytes(serialization.Encoding.PEM)


def make_development_chain() -> bytes:
    """A PEM file holding a new P-256 signing key, its certificate and the self-signed authority
    that issued it, for development and tests."""
    now = datetime.datetime.now(datetime.UTC)
    lifetime = (now - datetime.timedelta(hours=1), now + datetime.timedelta(days=365 * 10))
    authority_key = ec.generate_private_key(ec.SECP256R1())
    authority_name = _name("Darkroom development credentials authority (for testing)")
    authority = (
        _certificate(authority_name, authority_name, authority_key.public_key(), lifetime)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_CA_USAGE, critical=True)
        .sign(authority_key, hashes.SHA256())
    )
    signer_key = ec.generate_private_key(ec.SECP256R1())
    signer_name = _name("Darkroom development signer (for testing)")
    signer = (
        _certificate(signer_name, authority_name, signer_key.public_key(), lifetime)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_SIGNING_USAGE, critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(authority_key.public_key()),
            critical=False,
        )
        .sign(authority_key, hashes.SHA256())
    )
    key = signer_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return key + b"".join(
        cert.public_bytes(serialization.Encoding.PEM) for cert in (signer, authority)
    )


def signing_algorithm(private_key: bytes) -> str:
    """The C2PA algorithm a PEM private key signs with: ES256/384/512 by its curve, PS256 for
    RSA, Ed25519."""
    try:
        key = serialization.load_pem_private_key(private_key, password=None)
    except (ValueError, TypeError) as exc:
        raise CredentialsError(
            f"The C2PA private key is not an unencrypted PEM key: {exc}"
        ) from exc
    if isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name in _EC_ALGORITHMS:
        return _EC_ALGORITHMS[key.curve.name]
    if isinstance(key, rsa.RSAPrivateKey):
        return "ps256"
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return "ed25519"
    raise CredentialsError("The C2PA private key is neither P-256/384/521, RSA nor Ed25519.")


def sign(data: bytes, image_format: str, claim: Claim, credentials: SigningCredentials) -> bytes:
    """`data` (an image in `image_format`) with a manifest of `claim` embedded, signed."""
    media_type = MEDIA_TYPES[image_format]
    signer = c2pa.Signer.from_info(
        c2pa.C2paSignerInfo(
            credentials.algorithm.encode(),
            credentials.certificate_chain,
            credentials.private_key,
            None,
        )
    )
    context = c2pa.Context.from_dict(OFFLINE)
    with signer, context, c2pa.Builder(_manifest(claim, credentials), context) as builder:
        if claim.parent is not None:
            builder.add_ingredient(
                {
                    "title": claim.parent.title,
                    "relationship": "parentOf",
                    "label": PARENT_INGREDIENT,
                },
                MEDIA_TYPES[claim.parent.format],
                io.BytesIO(claim.parent.data),
            )
        signed = io.BytesIO()
        builder.sign(signer, media_type, io.BytesIO(data), signed)
    return signed.getvalue()


def carries_credentials(data: bytes, image_format: str) -> bool:
    """Whether the image carries a C2PA manifest (valid or not). Images without the JUMBF
    label are answered without reading them."""
    if b"c2pa" not in data or image_format not in MEDIA_TYPES:
        return False
    try:
        with (
            c2pa.Context.from_dict(OFFLINE) as context,
            c2pa.Reader(MEDIA_TYPES[image_format], io.BytesIO(data), context=context) as reader,
        ):
            return reader.get_active_manifest() is not None
    except c2pa.C2paError:
        return False


def _manifest(claim: Claim, credentials: SigningCredentials) -> str:
    signer_facts = {"for_testing": credentials.for_testing} | claim.facts
    if credentials.for_testing:
        signer_facts["note"] = (
            "Signed with Darkroom's development certificate: these credentials are for testing "
            "and are trusted by nobody."
        )
    return json.dumps(
        {
            "claim_generator_info": [{"name": GENERATOR}],
            "title": claim.title,
            "assertions": [
                {"label": "c2pa.actions.v2", "data": {"actions": claim.actions}},
                {"label": SIGNER_ASSERTION, "data": signer_facts},
            ],
        }
    )


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Darkroom development"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _certificate(
    subject: x509.Name,
    issuer: x509.Name,
    public_key: ec.EllipticCurvePublicKey,
    lifetime: tuple[datetime.datetime, datetime.datetime],
) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(lifetime[0])
        .not_valid_after(lifetime[1])
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
    )


def _split_key_and_chain(pem: bytes) -> tuple[bytes, bytes]:
    """The private key and the certificates of a development PEM file."""
    marker = b"-----BEGIN CERTIFICATE-----"
    start = pem.index(marker)
    return pem[:start], pem[start:]


def _write_once(path: Path, content: bytes) -> None:
    """Write `path` whole, unless another process already has."""
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=".c2pa-")
    try:
        with os.fdopen(descriptor, "wb") as file:
            file.write(content)
        os.chmod(temporary, 0o600)
        with contextlib.suppress(FileExistsError):
            os.link(temporary, path)
    finally:
        os.unlink(temporary)
