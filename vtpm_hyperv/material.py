# SPDX-License-Identifier: Apache-2.0
"""Classify and check the key material that ``os_vtpm_keys`` names.

Each secret is one of:
- an owner bundle: the owner guardian's signing and encryption
  certificates, each with its private key, as two PKCS#12 files without a
  password, concatenated (``Export-PfxCertificate`` of each; Windows'
  ``MSFT_HgsGuardian.NewByAcceptCertificates`` takes exactly these two
  files). The owner signs the KeyProtector, so the host sees its private
  keys: never for a shielded VM;
- a guardian file, as ``Export-HgsGuardian`` writes it (XML, public
  certificates only): a fabric or site that may also run the VM. Windows
  imports public guardians only from such a file
  (``MSFT_HgsGuardian.Import``); certificates alone (PEM, DER) have no
  documented way into a guardian store and are refused;
- a tenant artifact that only Hyper-V reads: a raw KeyProtector
  (``New-HgsKeyProtector``, ``Get-KeyProtectorFromShieldingDataFile``) or a
  shielding data file (PDK, ``New-ShieldingDataFile``). Their formats are
  Microsoft's and unpublished; the backend asks Hyper-V which one it is
  before changing the VM: in memory first
  (``MSFT_HgsKeyProtector.ConvertToByRawBytes``), and only what that
  declines goes, as a file, to the one documented reader of a PDK
  (``Msps_ProvisioningFileProcessor.PopulateFromFile``). A PDK keeps its
  private parts encrypted ("The specialization answer file and any
  additional files ... will be encrypted until a shielded VM is
  provisioned", New-ShieldingDataFile; ``Msps_PDK.RawData``, "The
  encrypted raw data of the file").

Nothing reaches a file before it is classified here, in memory: key
material in a form no Windows API takes (a private key alone, in PKCS#8,
PKCS#1 or SEC1, DER or PEM; a password-protected PKCS#12 file;
certificates alone) and anything larger than a shielding data file can be
are refused, so that no such secret is ever written to disk in clear
(DESIGN.md 2.4) while its kind is being worked out.

A valid set is one owner plus up to ``constants.MAX_GUARDIANS`` guardian
files, or one tenant artifact alone. Every refusal names the secret.
Payloads are read in place (no copies of the secret bytes), so the caller
can wipe them afterwards.
"""

from __future__ import annotations

from collections.abc import Sequence
import dataclasses

from cryptography import exceptions as cryptography_exceptions
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography import x509

from vtpm_core import constants
from vtpm_core import exception

# HGS guardians use RSA keys of at least 2048 bits.
MIN_RSA_BITS = 2048
# A KeyProtector holds at least one RSA-2048 wrapping and one signature.
MIN_ARTIFACT_BYTES = 512
# A shielding data file's other files are "limited to 384KB"
# (New-ShieldingDataFile); with its KeyProtector, volume ID qualifiers and
# answer file it stays well under [vtpm_key_manager] max_payload_bytes'
# default, 1 MiB, which bounds a tenant artifact here too.
MAX_ARTIFACT_BYTES = 1024 * 1024
# PKCS#12 (RFC 7292): PFX ::= SEQUENCE { version INTEGER {v3(3)},
# authSafe ContentInfo (id-data, 1.2.840.113549.1.7.1), ... }
_PFX_VERSION = b'\x02\x01\x03'
_ID_DATA = b'\x06\x09\x2a\x86\x48\x86\xf7\x0d\x01\x07\x01'

# What a secret is (``Material.kind``), in the words messages use.
OWNER = 'owner PKCS#12 bundle'
GUARDIAN = 'guardian file'
TENANT_ARTIFACT = 'raw KeyProtector or shielding data file'


@dataclasses.dataclass(frozen=True, repr=False)
class Material:
    """One classified secret; ``payload`` is the caller's buffer (no copy).

    For an owner bundle, ``signing`` and ``encryption`` are (private key,
    certificate) pairs.
    """

    ref: str
    kind: str  # OWNER, GUARDIAN or TENANT_ARTIFACT
    payload: object
    signing: tuple | None = None
    encryption: tuple | None = None

    def __repr__(self):
        return '<Material %s: %s>' % (self.ref, self.kind)

    @property
    def signing_der(self) -> bytes | None:
        if self.signing is None:
            return None
        return self.signing[1].public_bytes(serialization.Encoding.DER)


@dataclasses.dataclass(frozen=True)
class KeySet:
    """A valid set: an owner and guardian files, or one tenant artifact."""

    owner: Material | None = None
    guardians: tuple[Material, ...] = ()
    artifact: Material | None = None


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


_CERTIFICATES_ALONE = (
    'certificates alone have no documented way into a Hyper-V guardian '
    'store; give the guardian as the file "Export-HgsGuardian" writes')


def _parse(ref, view):
    head = bytes(view[:64]).lstrip(b'\xef\xbb\xbf \t\r\n')
    if head.startswith(b'<'):
        return Material(ref, GUARDIAN, view.obj)
    if head.startswith(b'-----'):
        if b'PRIVATE KEY-----' in head:
            raise _invalid(ref, 'a private key alone (PEM)' + _KEY_ALONE)
        raise _invalid(ref, 'PEM: ' + _CERTIFICATES_ALONE)
    if head[:1] == b'\x30':
        data = bytes(view)
        _refuse_private_key(ref, data)
        parts = _split_der(data)
        found = _from_der(ref, view, parts) if parts else None
        if found is not None:
            return found
    if len(view) > MAX_ARTIFACT_BYTES:
        raise _invalid(ref, (
            '%d bytes that parse as no owner bundle (two PKCS#12 files) and '
            'no guardian file, and are larger than a raw KeyProtector or a '
            'shielding data file can be (%d bytes)') % (
                len(view), MAX_ARTIFACT_BYTES))
    if len(view) < MIN_ARTIFACT_BYTES:
        raise _invalid(ref, (
            '%d bytes that parse as no owner bundle (two PKCS#12 files), no '
            'guardian file and are too short for a raw KeyProtector or a '
            'shielding data file') % len(view))
    return Material(ref, TENANT_ARTIFACT, view.obj)


def _refuse_private_key(ref, data):
    """A DER private key, or a PKCS#12 file that opens only with a
    password, at the start of ``data``: key material no Windows API takes
    as it is, refused before anything is written."""
    first = _split_der(data, first_only=True)
    if not first:
        return
    first = first[0]
    try:
        serialization.load_der_private_key(first, None)
        what = 'a private key alone (DER)'
    except TypeError:  # encrypted PKCS#8: it wants a password
        what = 'an encrypted private key alone (DER PKCS#8)'
    except (ValueError, cryptography_exceptions.UnsupportedAlgorithm):
        what = None
    if what is not None:
        raise _invalid(ref, what + _KEY_ALONE)


_KEY_ALONE = (
    '; allowed: an owner bundle (two PKCS#12 files without a password, '
    'which Windows imports by New-HgsGuardian -AcceptCertificates), a '
    'guardian file, a raw KeyProtector or a shielding data file')


def _is_pfx(data):
    """Whether DER ``data`` starts as a PKCS#12 file (RFC 7292)."""
    return _PFX_VERSION in data[2:8] and _ID_DATA in data[:32]


def _split_der(data, first_only=False):
    """Concatenated DER structures, or None if that is not what it is."""
    parts, offset = [], 0
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
        parts.append(data[offset:end])
        if first_only:
            break
        offset = end
    return parts


def _from_der(ref, view, parts):
    """An owner bundle; None for DER that is neither PKCS#12 nor
    certificates (a tenant artifact may be DER too)."""
    bundles = [_load_pkcs12(p) for p in parts]
    if all(b is None for b in bundles):
        if any(_is_pfx(p) for p in parts):
            raise _invalid(ref, 'a PKCS#12 file protected by a password'
                           + _KEY_ALONE)
        if all(_is_certificate(p) for p in parts):
            raise _invalid(ref, 'DER certificates: ' + _CERTIFICATES_ALONE)
        return None
    if len(parts) != 2 or any(b is None or b.key is None or b.cert is None
                              for b in bundles):
        raise _invalid(ref, (
            '%d DER structure(s); an owner bundle is two PKCS#12 files '
            'without a password, the signing certificate with its private '
            'key and then the encryption certificate with its private key')
            % len(parts))
    pairs = [(b.key, b.cert.certificate) for b in bundles]
    usages = [_usage(cert) for _, cert in pairs]
    if usages != [{'signing'}, {'encryption'}]:
        raise _invalid(ref, (
            'the PKCS#12 files are for %s; an owner bundle holds the signing '
            'certificate (digitalSignature) first, then the encryption '
            'certificate (keyEncipherment)') % ' and '.join(
                '/'.join(sorted(u)) or 'no key usage' for u in usages))
    for key, cert in pairs:
        if not isinstance(key, rsa.RSAPrivateKey) or \
                key.key_size < MIN_RSA_BITS:
            raise _invalid(ref, 'certificate %s has no RSA key of at least '
                           '%d bits' % (cert.subject.rfc4514_string(),
                                        MIN_RSA_BITS))
        if key.public_key().public_numbers() != \
                cert.public_key().public_numbers():
            raise _invalid(ref, 'PKCS#12 file whose private key is not its '
                           'certificate\'s (%s)'
                           % cert.subject.rfc4514_string())
    return Material(ref, OWNER, view.obj, pairs[0], pairs[1])


def _load_pkcs12(data):
    # cryptography checks an RSA private key as it loads it (two primality
    # tests and a modular exponentiation: about 100 ms for 2048 bits), and
    # its PKCS#12 loader cannot skip that. It is this check that keeps a
    # tenant's invalid key from making OpenSSL in nova-compute "hang, crash,
    # or otherwise misbehave" (cryptography's load_der_private_key); each
    # key is loaded, so checked, once per attach (benchmarks/bench_attach).
    for password in (None, b''):
        try:
            return pkcs12.load_pkcs12(data, password)
        except (ValueError, TypeError):
            continue
    return None


def _is_certificate(data):
    try:
        x509.load_der_x509_certificate(data)
        return True
    except ValueError:
        return False


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


def check_set(materials: Sequence[Material]) -> KeySet:
    """Check that the classified secrets form a valid set.

    :raises vtpm_core.exception.InvalidKeySet: the message names the
        secrets at fault.
    """
    artifacts = [m for m in materials if m.kind == TENANT_ARTIFACT]
    owners = [m for m in materials if m.kind == OWNER]
    guardians = [m for m in materials if m.kind == GUARDIAN]
    if artifacts:
        if len(materials) != 1:
            raise exception.InvalidKeySet(reason=(
                'secret %s is a raw KeyProtector or shielding data file, '
                'which must be the only secret, but %d were given (%s)') % (
                    artifacts[0].ref, len(materials),
                    ', '.join(m.ref for m in materials)))
        return KeySet(artifact=artifacts[0])
    if not owners:
        raise exception.InvalidKeySet(reason=(
            'no owner PKCS#12 bundle among secrets %s (all guardian '
            'files)') % ', '.join(m.ref for m in materials))
    if len(owners) > 1:
        raise exception.InvalidKeySet(reason=(
            'secrets %s are all owner bundles; a KeyProtector has one '
            'owner') % ', '.join(m.ref for m in owners))
    if len(guardians) > constants.MAX_GUARDIANS:
        raise exception.InvalidKeySet(reason='%d guardians; at most %d' % (
            len(guardians), constants.MAX_GUARDIANS))
    seen = {}
    for g in guardians:
        key = bytes(memoryview(g.payload))
        if key in seen:
            raise exception.InvalidKeySet(reason=(
                'secrets %s and %s hold the same guardian') % (
                    seen[key], g.ref))
        seen[key] = g.ref
    return KeySet(owner=owners[0], guardians=tuple(guardians))
