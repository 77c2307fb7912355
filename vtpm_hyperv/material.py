# SPDX-License-Identifier: Apache-2.0
"""Classify and check the key material ``os_vtpm_keys`` names (DESIGN 2.4).

Each secret is one of:
- an owner bundle: PKCS#12 without a password, holding the owner
  guardian's private signing key, its signing certificate and its
  encryption certificate (the owner signs the KeyProtector);
- a guardian: its signing and encryption certificates, PEM or DER
  (concatenated), or a PKCS#12 without a private key;
- a raw KeyProtector made with Microsoft's tools: anything else of a
  plausible size, which only Hyper-V itself can read
  (``MSFT_HgsKeyProtector.ConvertToByRawBytes``; the backend asks it before
  changing the VM).

A valid set is exactly one owner plus up to five guardians, or one raw
KeyProtector alone. Every refusal names the secret. Payloads are read in
place (no copies), so the caller can wipe them afterwards.
"""

from __future__ import annotations

from collections.abc import Sequence
import dataclasses
import enum

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import pkcs12

from vtpm_core import constants
from vtpm_core import exception

# HGS guardians use RSA keys of at least 2048 bits.
MIN_RSA_BITS = 2048
# A KeyProtector holds at least one RSA-2048 wrapping and one signature.
MIN_RAW_KEY_PROTECTOR_BYTES = 512
MAX_GUARDIANS = constants.MAX_KEYS - 1


class Kind(enum.Enum):
    OWNER = 'owner PKCS#12 bundle'
    GUARDIAN = 'guardian certificates'
    RAW_KEY_PROTECTOR = 'raw KeyProtector'


@dataclasses.dataclass(frozen=True, repr=False)
class Material:
    """One classified secret; ``payload`` is the caller's buffer (no copy)."""

    ref: str
    kind: Kind
    payload: object
    signing_cert: x509.Certificate | None = None
    encryption_cert: x509.Certificate | None = None

    def __repr__(self):
        return '<Material %s: %s>' % (self.ref, self.kind.value)

    @property
    def signing_der(self) -> bytes | None:
        if self.signing_cert is None:
            return None
        return self.signing_cert.public_bytes(serialization.Encoding.DER)

    @property
    def encryption_der(self) -> bytes | None:
        if self.encryption_cert is None:
            return None
        return self.encryption_cert.public_bytes(serialization.Encoding.DER)


@dataclasses.dataclass(frozen=True)
class KeySet:
    """A valid set: an owner and guardians, or one raw KeyProtector."""

    owner: Material | None = None
    guardians: tuple[Material, ...] = ()
    raw: Material | None = None


def _invalid(ref, reason):
    return exception.InvalidKeyMaterial(ref=ref, reason=reason)


def parse(ref: str, payload) -> Material:
    """Classify one secret's payload.

    :raises vtpm_core.exception.InvalidKeyMaterial: it is none of the
        three kinds; the message names ``ref`` and what was wrong.
    """
    try:
        view = memoryview(payload)
    except TypeError:
        raise _invalid(ref, 'the payload is not bytes')
    if not len(view):
        raise _invalid(ref, 'the payload is empty')
    try:
        return _parse(ref, view)
    except exception.VTPMError:
        raise
    except Exception as e:  # noqa: BLE001 - parsers' odd errors on odd bytes
        raise _invalid(ref, 'unreadable (%s)' % type(e).__name__) from e


def _parse(ref, view):
    head = bytes(view[:64])
    if b'-----BEGIN' in head or head.lstrip().startswith(b'-----'):
        return _parse_pem(ref, view)
    if head[:1] == b'\x30':
        bundle = _load_pkcs12(view)
        if bundle is not None:
            return _from_pkcs12(ref, view, bundle)
        certs = _split_der(view)
        if certs:
            return _guardian(ref, view, certs)
    if len(view) < MIN_RAW_KEY_PROTECTOR_BYTES:
        raise _invalid(ref, (
            '%d bytes that parse as no owner PKCS#12 bundle (without a '
            'password), no guardian certificates (PEM or DER) and are too '
            'short for a raw KeyProtector') % len(view))
    return Material(ref, Kind.RAW_KEY_PROTECTOR, view.obj)


def _load_pkcs12(view):
    for password in (None, b''):
        try:
            return pkcs12.load_pkcs12(view, password)
        except (ValueError, TypeError):
            continue
    return None


def _parse_pem(ref, view):
    data = bytes(view)
    if b'PRIVATE KEY-----' in data:
        raise _invalid(ref, 'PEM with a private key: an owner guardian must '
                       'be a PKCS#12 bundle, a guardian certificates only')
    try:
        certs = x509.load_pem_x509_certificates(data)
    except ValueError as e:
        raise _invalid(ref, 'PEM that holds no readable certificate') from e
    return _guardian(ref, view, certs)


def _split_der(view):
    """Concatenated DER certificates, or None if that is not what it is."""
    data = bytes(view)
    certs, offset = [], 0
    while offset < len(data):
        if data[offset] != 0x30 or offset + 2 > len(data):
            return None
        length = data[offset + 1]
        header = 2
        if length & 0x80:
            count = length & 0x7f
            if count == 0 or count > 4 or offset + 2 + count > len(data):
                return None
            length = int.from_bytes(data[offset + 2:offset + 2 + count], 'big')
            header += count
        end = offset + header + length
        if end > len(data):
            return None
        try:
            certs.append(x509.load_der_x509_certificate(data[offset:end]))
        except ValueError:
            return None
        offset = end
    return certs or None


def _usage(cert):
    try:
        ku = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return set()
    usage = set()
    if ku.digital_signature:
        usage.add('signing')
    if ku.key_encipherment or ku.data_encipherment:
        usage.add('encryption')
    return usage


def _pair(ref, certs):
    """(signing, encryption) certificates out of ``certs``."""
    signing = [c for c in certs if _usage(c) == {'signing'}]
    encryption = [c for c in certs if _usage(c) == {'encryption'}]
    if len(certs) != 2 or len(signing) != 1 or len(encryption) != 1:
        raise _invalid(ref, (
            '%d certificate(s), %d for signing and %d for encryption (by key '
            'usage); a guardian has exactly one signing certificate '
            '(digitalSignature) and one encryption certificate '
            '(keyEncipherment)') % (len(certs), len(signing),
                                     len(encryption)))
    for cert in certs:
        key = cert.public_key()
        if not isinstance(key, rsa.RSAPublicKey) or \
                key.key_size < MIN_RSA_BITS:
            raise _invalid(ref, 'certificate %s has no RSA key of at least '
                           '%d bits' % (cert.subject.rfc4514_string(),
                                        MIN_RSA_BITS))
    return signing[0], encryption[0]


def _guardian(ref, view, certs):
    signing, encryption = _pair(ref, certs)
    return Material(ref, Kind.GUARDIAN, view.obj, signing, encryption)


def _from_pkcs12(ref, view, bundle):
    certs = [c.certificate for c in bundle.additional_certs]
    if bundle.cert is not None:
        certs.insert(0, bundle.cert.certificate)
    if bundle.key is None:
        return _guardian(ref, view, certs)
    signing, encryption = _pair(ref, certs)
    if not isinstance(bundle.key, rsa.RSAPrivateKey) or \
            bundle.key.public_key().public_numbers() != \
            signing.public_key().public_numbers():
        raise _invalid(ref, 'PKCS#12 bundle whose private key is not the '
                       'signing certificate\'s; an owner bundle holds the '
                       'owner guardian\'s private signing key')
    return Material(ref, Kind.OWNER, view.obj, signing, encryption)


def check_set(materials: Sequence[Material]) -> KeySet:
    """Check that the classified secrets form a valid set.

    :raises vtpm_core.exception.InvalidKeySet: the message names the
        secrets at fault.
    """
    raws = [m for m in materials if m.kind is Kind.RAW_KEY_PROTECTOR]
    owners = [m for m in materials if m.kind is Kind.OWNER]
    guardians = [m for m in materials if m.kind is Kind.GUARDIAN]
    if raws:
        if len(materials) != 1:
            raise exception.InvalidKeySet(reason=(
                'secret %s is a raw KeyProtector, which must be the only '
                'secret, but %d were given (%s)') % (
                    raws[0].ref, len(materials),
                    ', '.join(m.ref for m in materials)))
        return KeySet(raw=raws[0])
    if not owners:
        raise exception.InvalidKeySet(reason=(
            'no owner PKCS#12 bundle among secrets %s (all guardian '
            'certificates)') % ', '.join(m.ref for m in materials))
    if len(owners) > 1:
        raise exception.InvalidKeySet(reason=(
            'secrets %s are all owner bundles; a KeyProtector has one '
            'owner') % ', '.join(m.ref for m in owners))
    if len(guardians) > MAX_GUARDIANS:
        raise exception.InvalidKeySet(reason='%d guardians; at most %d' % (
            len(guardians), MAX_GUARDIANS))
    seen = {owners[0].signing_der: owners[0].ref}
    for g in guardians:
        if g.signing_der in seen:
            raise exception.InvalidKeySet(reason=(
                'secrets %s and %s hold the same guardian') % (
                    seen[g.signing_der], g.ref))
        seen[g.signing_der] = g.ref
    return KeySet(owner=owners[0], guardians=tuple(guardians))
