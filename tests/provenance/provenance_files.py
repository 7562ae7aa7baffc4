"""Makers of files with each provenance marker, and of a throw-away C2PA signing PKI."""

from __future__ import annotations

import datetime
import io
from dataclasses import dataclass

import pytest
from PIL import Image, PngImagePlugin

DST = "http://cv.iptc.org/newscodes/digitalsourcetype/"
A1111 = (
    "a photo of a cat on a sofa\nNegative prompt: blurry\n"
    "Steps: 20, Sampler: Euler a, CFG scale: 7, Seed: 1234, Size: 512x512, Model: sd15"
)
COMFY_PROMPT = (
    '{"3": {"class_type": "KSampler", "inputs": {"seed": 5, "steps": 20}}, '
    '"4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "sd15.safetensors"}}}'
)


def xmp_packet(attributes: str = "", elements: str = "") -> str:
    """An XMP packet whose rdf:Description carries ``attributes`` and child ``elements``."""
    return (
        '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>'
        '<x:xmpmeta xmlns:x="adobe:ns:meta/">'
        '<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        '<rdf:Description rdf:about="" '
        'xmlns:Iptc4xmpExt="http://iptc.org/std/Iptc4xmpExt/2008-02-29/" '
        'xmlns:xmp="http://ns.adobe.com/xap/1.0/" '
        f'xmlns:dc="http://purl.org/dc/elements/1.1/" {attributes}>{elements}</rdf:Description>'
        '</rdf:RDF></x:xmpmeta><?xpacket end="w"?>'
    )


def picture() -> Image.Image:
    """A small RGB picture with some structure (JPEG encodes it as real entropy-coded data)."""
    image = Image.new("RGB", (64, 48), (90, 120, 200))
    for x in range(0, 64, 8):
        image.paste((200, 60 + 2 * x, 30), (x, 0, x + 4, 48))
    return image


def png(texts: dict[str, str] | None = None, xmp: str | None = None, **save) -> bytes:
    """PNG bytes with tEXt chunks (``texts``), an iTXt XMP packet, and Pillow save options."""
    info = PngImagePlugin.PngInfo()
    for key, value in (texts or {}).items():
        info.add_text(key, value)
    if xmp is not None:
        info.add_itxt("XML:com.adobe.xmp", xmp)
    out = io.BytesIO()
    picture().save(out, "PNG", pnginfo=info, **save)
    return out.getvalue()


def jpeg(**save) -> bytes:
    """JPEG bytes; ``save`` passes exif=, xmp=... to Pillow."""
    out = io.BytesIO()
    picture().save(out, "JPEG", quality=90, **save)
    return out.getvalue()


def exif(**tags: str | bytes) -> Image.Exif:
    """An EXIF block from tag names (Software, Make, Model, ImageDescription)."""
    ids = {"Software": 0x0131, "Make": 0x010F, "Model": 0x0110, "ImageDescription": 0x010E}
    block = Image.Exif()
    for name, value in tags.items():
        # Bytes go in as written: EXIF ASCII cannot hold "·", so tools write UTF-8 there.
        block[ids[name]] = value.encode() if isinstance(value, str) else value
    return block


@dataclass(frozen=True)
class SigningPki:
    """A self-signed root CA and an ES256 leaf that c2pa accepts for claim signing."""

    chain_pem: bytes  # leaf then root
    key_pem: bytes
    root_pem: str


def make_pki(signer_name: str = "realfake test signer") -> SigningPki:
    """A root CA and a leaf with the extensions C2PA requires of a claim-signing certificate.

    C2PA (spec 2.x, "Certificate profile"): the leaf is not a CA, has digitalSignature key
    usage, an extended key usage of emailProtection or documentSigning, and an authority key
    identifier; the chain ends at a CA with keyCertSign.
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    def name(common: str) -> x509.Name:
        return x509.Name(
            [
                x509.NameAttribute(NameOID.COMMON_NAME, common),
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "realfake tests"),
            ]
        )

    def usage(sign: bool, ca: bool) -> x509.KeyUsage:
        return x509.KeyUsage(
            digital_signature=sign,
            content_commitment=False,
            key_encipherment=False,
            data_encipherment=False,
            key_agreement=False,
            key_cert_sign=ca,
            crl_sign=ca,
            encipher_only=False,
            decipher_only=False,
        )

    now = datetime.datetime.now(datetime.timezone.utc)
    root_key = ec.generate_private_key(ec.SECP256R1())
    root = (
        x509.CertificateBuilder()
        .subject_name(name("realfake test root"))
        .issuer_name(name("realfake test root"))
        .public_key(root_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(usage(sign=False, ca=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(root_key.public_key()), False)
        .sign(root_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder()
        .subject_name(name(signer_name))
        .issuer_name(root.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(usage(sign=True, ca=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(root_key.public_key()), False
        )
        .sign(root_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    return SigningPki(
        chain_pem=leaf.public_bytes(pem) + root.public_bytes(pem),
        key_pem=key.private_bytes(
            pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ),
        root_pem=root.public_bytes(pem).decode(),
    )


def sign_jpeg(pki: SigningPki, actions: list[dict], source: bytes | None = None) -> bytes:
    """``source`` (a JPEG) signed with a C2PA manifest holding ``actions``; no timestamp server."""
    c2pa = pytest.importorskip("c2pa", reason="c2pa-python is not installed (realfake[dev])")
    definition = {
        "claim_generator_info": [{"name": "realfake-test-generator", "version": "1.0"}],
        "title": "signed.jpg",
        "assertions": [{"label": "c2pa.actions", "data": {"actions": actions}}],
    }
    info = c2pa.C2paSignerInfo(
        alg=b"es256", sign_cert=pki.chain_pem, private_key=pki.key_pem, ta_url=None
    )
    out = io.BytesIO()
    with c2pa.Signer.from_info(info) as signer, c2pa.Builder(definition) as builder:
        builder.sign(signer, "image/jpeg", io.BytesIO(source or jpeg()), out)
    return out.getvalue()
