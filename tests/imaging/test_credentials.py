"""Signing credentials: the operator's chain signs as itself, the development chain is made once
per data dir and says it is for testing, and keys are matched to their C2PA algorithm."""

import io
import json
from pathlib import Path

import c2pa
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from PIL import Image
from pydantic import ValidationError

from app.config import Settings
from app.imaging.credentials import (
    DEVELOPMENT_FILE,
    SIGNER_ASSERTION,
    Claim,
    CredentialsError,
    carries_credentials,
    development_credentials,
    load_credentials,
    make_development_chain,
    sign,
    signing_algorithm,
)

CREATED = [{"action": "c2pa.created", "digitalSourceType": "http://example.test/type"}]


def png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (48, 32), (120, 40, 200)).save(buffer, "PNG")
    return buffer.getvalue()


def pem_key(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def test_the_development_chain_is_made_once_and_shared(tmp_path: Path) -> None:
    first = development_credentials(tmp_path)
    second = development_credentials(tmp_path)
    assert first == second
    assert first.for_testing and first.algorithm == "es256"
    assert (tmp_path / DEVELOPMENT_FILE).stat().st_mode & 0o777 == 0o600


def test_operator_credentials_sign_without_the_testing_note(tmp_path: Path) -> None:
    pem = make_development_chain()
    start = pem.index(b"-----BEGIN CERTIFICATE-----")
    (tmp_path / "key.pem").write_bytes(pem[:start])
    (tmp_path / "chain.pem").write_bytes(pem[start:])
    credentials = load_credentials(tmp_path / "chain.pem", tmp_path / "key.pem", tmp_path)
    assert not credentials.for_testing
    assert not (tmp_path / DEVELOPMENT_FILE).exists()

    signed = sign(png(), "png", Claim("out.png", CREATED), credentials)

    assert carries_credentials(signed, "png") and not carries_credentials(png(), "png")
    anchor = pem[pem.rindex(b"-----BEGIN CERTIFICATE-----") :].decode()
    context = c2pa.Context.from_dict(
        {"verify": {"verify_trust": True}, "trust": {"trust_anchors": anchor}}
    )
    with c2pa.Reader("image/png", io.BytesIO(signed), context=context) as reader:
        assert reader.get_validation_state() == "Trusted"
        manifest = json.loads(reader.json())["manifests"][reader.get_active_manifest()["label"]]
    (facts,) = [a["data"] for a in manifest["assertions"] if a["label"] == SIGNER_ASSERTION]
    assert facts == {"for_testing": False}


def test_untrusted_manifests_are_still_read_but_not_trusted(tmp_path: Path) -> None:
    signed = sign(png(), "png", Claim("out.png", CREATED), development_credentials(tmp_path))
    with c2pa.Reader("image/png", io.BytesIO(signed)) as reader:
        assert reader.get_validation_state() != "Trusted"


def test_keys_are_matched_to_their_algorithm() -> None:
    assert signing_algorithm(pem_key(ec.generate_private_key(ec.SECP384R1()))) == "es384"
    assert signing_algorithm(pem_key(rsa.generate_private_key(65537, 2048))) == "ps256"
    with pytest.raises(CredentialsError):
        signing_algorithm(b"not a key")


def test_the_certificate_and_key_are_set_together(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="DARKROOM_C2PA_PRIVATE_KEY"):
        Settings(data_dir=tmp_path, c2pa_certificate=tmp_path / "chain.pem")


def test_the_credentials_files_must_exist(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="does not exist"):
        Settings(
            data_dir=tmp_path,
            c2pa_certificate=tmp_path / "chain.pem",
            c2pa_private_key=tmp_path / "key.pem",
        )
