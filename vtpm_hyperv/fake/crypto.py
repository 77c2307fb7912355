# SPDX-License-Identifier: Apache-2.0
"""Guardians and KeyProtectors with real cryptography, for the simulator.

A guardian is two RSA key pairs with certificates, as HGS makes them: a
signing certificate (key usage digitalSignature) and an encryption
certificate (keyEncipherment, dataEncipherment).

Microsoft's KeyProtector wire format (MS-KPS) is not public in a form we
can reproduce, so the simulator uses its own, with the same structure:

    MAGIC | u32 length | body (JSON) | signature (RSA-PSS, SHA-256)

The body names the owner and the guardians (their certificates, DER,
base64) and holds, for each of them, the random 256-bit transport key
wrapped with that party's encryption certificate (RSA-OAEP, SHA-256),
plus an HMAC of the wrappings keyed with the transport key (MS-KPS's
``TransportKeySignature``). Only a private key of the owner or of a
listed guardian recovers the transport key; any other key fails. The
owner signs a new KeyProtector; one rolled on start (a new transport key
for the same parties) is signed by the guardian that unwrapped it (MS-KPS's
``GuardianSignature``), and the body says which party signed.

The tenant-side files whose formats Microsoft does not publish are
simulated here too, each with its own magic: the guardian file that
``Export-HgsGuardian`` writes (XML on Windows; ``export_guardian_file``)
and the shielding data file (PDK) that ``New-ShieldingDataFile`` writes
(``make_shielding_data_file``), which only the simulated
``Msps_ProvisioningFileProcessor.PopulateFromFile`` reads.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime
import hashlib
import hmac
import json
import os
import struct
import uuid

from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.ciphers import aead
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography import x509
from cryptography.x509 import oid

MAGIC = b'VTPMSIM-KP1\n'
TRANSPORT_KEY_BYTES = 32

_OAEP = padding.OAEP(mgf=padding.MGF1(hashes.SHA256()),
                     algorithm=hashes.SHA256(), label=None)
_PSS = padding.PSS(mgf=padding.MGF1(hashes.SHA256()),
                   salt_length=padding.PSS.MAX_LENGTH)


class KeyProtectorError(ValueError):
    """RawData that is not a well-formed, correctly signed KeyProtector."""


class UnwrapError(ValueError):
    """The key is not the owner's nor a guardian's of the KeyProtector."""


@dataclasses.dataclass(frozen=True, repr=False)
class Guardian:
    """A guardian: certificates, and private keys when we hold them.

    ``repr`` names the guardian only: private keys never appear in logs.
    """

    name: str
    signing_cert: x509.Certificate
    encryption_cert: x509.Certificate
    signing_key: rsa.RSAPrivateKey | None = None
    encryption_key: rsa.RSAPrivateKey | None = None

    def __repr__(self):
        return '<Guardian %s>' % self.name

    @property
    def signing_der(self) -> bytes:
        return self.signing_cert.public_bytes(serialization.Encoding.DER)

    @property
    def encryption_der(self) -> bytes:
        return self.encryption_cert.public_bytes(serialization.Encoding.DER)

    def public(self) -> 'Guardian':
        """This guardian without its private keys (what a host imports)."""
        return Guardian(self.name, self.signing_cert, self.encryption_cert)


# Generating RSA keys dominates test time. With ``reuse_keys=True`` a
# guardian gets the keys an earlier guardian of the same name got in this
# process: the same name is then the same identity, and different names
# never share a key (which would let a stranger unwrap).
_KEY_CACHE: dict[tuple, rsa.RSAPrivateKey] = {}


def _new_key(key_size, reuse_as=None):
    if reuse_as is not None and (reuse_as, key_size) in _KEY_CACHE:
        return _KEY_CACHE[(reuse_as, key_size)]
    key = rsa.generate_private_key(public_exponent=65537, key_size=key_size)
    if reuse_as is not None:
        _KEY_CACHE[(reuse_as, key_size)] = key
    return key


def _certificate(subject_cn, key, usage, issuer=None, not_before=None,
                 days=3650):
    now = not_before or datetime.datetime.now(datetime.timezone.utc)
    subject = x509.Name([x509.NameAttribute(oid.NameOID.COMMON_NAME,
                                            subject_cn)])
    if issuer is None:
        issuer_name, issuer_key = subject, key
    else:
        issuer_name, issuer_key = issuer
    builder = (x509.CertificateBuilder()
               .subject_name(subject)
               .issuer_name(issuer_name)
               .public_key(key.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=5))
               .not_valid_after(now + datetime.timedelta(days=days))
               .add_extension(usage, critical=True))
    return builder.sign(issuer_key, hashes.SHA256())


def validity(cert: x509.Certificate) -> tuple[datetime.datetime, ...]:
    """A certificate's notBefore and notAfter, aware UTC times.

    cryptography 42 added the ``*_utc`` properties; 38, 2023.1's, has only
    the naive UTC ones, which 42 deprecates.
    """
    if hasattr(cert, 'not_valid_before_utc'):
        return cert.not_valid_before_utc, cert.not_valid_after_utc
    return (cert.not_valid_before.replace(tzinfo=datetime.timezone.utc),
            cert.not_valid_after.replace(tzinfo=datetime.timezone.utc))


_SIGNING_USAGE = x509.KeyUsage(
    digital_signature=True, content_commitment=False, key_encipherment=False,
    data_encipherment=False, key_agreement=False, key_cert_sign=False,
    crl_sign=False, encipher_only=False, decipher_only=False)
_ENCRYPTION_USAGE = x509.KeyUsage(
    digital_signature=False, content_commitment=False, key_encipherment=True,
    data_encipherment=True, key_agreement=False, key_cert_sign=False,
    crl_sign=False, encipher_only=False, decipher_only=False)


@dataclasses.dataclass(frozen=True, repr=False)
class CertificateAuthority:
    """A root CA; a host that trusts it needs no AllowUntrustedRoot."""

    cert: x509.Certificate
    key: rsa.RSAPrivateKey

    def __repr__(self):
        return '<CertificateAuthority %s>' % self.cert.subject.rfc4514_string()


def make_ca(name: str = 'Simulated Guardian CA') -> CertificateAuthority:
    key = _new_key(2048, ('ca', name))
    usage = x509.KeyUsage(
        digital_signature=False, content_commitment=False,
        key_encipherment=False, data_encipherment=False, key_agreement=False,
        key_cert_sign=True, crl_sign=True, encipher_only=False,
        decipher_only=False)
    return CertificateAuthority(_certificate(name, key, usage), key)


def make_guardian(name: str, *, ca: CertificateAuthority | None = None,
                  expired: bool = False, key_size: int = 2048,
                  reuse_keys: bool = False) -> Guardian:
    """Make a guardian with both private keys (what New-HgsGuardian does).

    :param ca: issue the certificates from this CA; None makes them
        self-signed (hosts then need AllowUntrustedRoot).
    :param expired: make certificates that expired yesterday.
    :param reuse_keys: reuse the keys an earlier guardian of the same
        name got in this process (fast; for tests).
    """
    signing_key = _new_key(key_size, ('signing', name) if reuse_keys
                           else None)
    encryption_key = _new_key(key_size, ('encryption', name) if reuse_keys
                              else None)
    not_before = days = None
    if expired:
        not_before = (datetime.datetime.now(datetime.timezone.utc)
                      - datetime.timedelta(days=30))
        days = 29
    issuer = None if ca is None else (ca.cert.subject, ca.key)
    kwargs = {'not_before': not_before}
    if days:
        kwargs['days'] = days
    signing = _certificate('Signing Certificate (%s)' % name, signing_key,
                           _SIGNING_USAGE, issuer, **kwargs)
    encryption = _certificate('Encryption Certificate (%s)' % name,
                              encryption_key, _ENCRYPTION_USAGE, issuer,
                              **kwargs)
    return Guardian(name, signing, encryption, signing_key, encryption_key)


def export_owner_pkcs12(guardian: Guardian) -> bytes:
    """The owner bundle a tenant stores in Barbican.

    Two PKCS#12 files, concatenated: the signing certificate with its
    private key, then the encryption certificate with its private key, as
    ``Export-PfxCertificate`` writes each certificate of the owner guardian
    from the "Shielded VM Local Certificates" store;
    ``NewByAcceptCertificates`` takes exactly these two files. Barbican
    encrypts secrets at rest, so they carry no password.
    """
    return b''.join(pkcs12.serialize_key_and_certificates(
        guardian.name.encode(), key, cert, None,
        serialization.NoEncryption()) for key, cert in (
            (guardian.signing_key, guardian.signing_cert),
            (guardian.encryption_key, guardian.encryption_cert)))


def export_guardian_certificates(guardian: Guardian,
                                 encoding: str = 'PEM') -> bytes:
    """A guardian's two certificates, PEM or DER, concatenated."""
    enc = {'PEM': serialization.Encoding.PEM,
           'DER': serialization.Encoding.DER}[encoding]
    return (guardian.signing_cert.public_bytes(enc)
            + guardian.encryption_cert.public_bytes(enc))


GUARDIAN_FILE_MAGIC = b'<?xml version="1.0"?>\n<!-- VTPMSIM-GUARDIAN1 -->\n'


def export_guardian_file(guardian: Guardian) -> bytes:
    """The guardian file ``Export-HgsGuardian`` writes (simulated format).

    Public certificates only: what a tenant gives for a DR site or another
    fabric, and what ``MSFT_HgsGuardian.Import`` reads.
    """
    body = json.dumps({'name': guardian.name,
                       'signing': _b64(guardian.signing_der),
                       'encryption': _b64(guardian.encryption_der)},
                      sort_keys=True)
    return GUARDIAN_FILE_MAGIC + ('<Guardian>%s</Guardian>\n'
                                  % body).encode()


def read_guardian_file(data: bytes) -> Guardian:
    """:raises KeyProtectorError: not a guardian file."""
    data = bytes(data)
    if not data.startswith(GUARDIAN_FILE_MAGIC):
        raise KeyProtectorError('not a guardian file')
    text = data[len(GUARDIAN_FILE_MAGIC):].decode('utf-8', 'replace')
    inner = text.strip().removeprefix('<Guardian>').removesuffix(
        '</Guardian>')
    try:
        return _guardian_of(json.loads(inner))
    except ValueError as e:
        raise KeyProtectorError('malformed guardian file') from e


PDK_MAGIC = b'VTPMSIM-PDK1\n'
# The security policies New-ShieldingDataFile -Policy takes.
POLICIES = ('Shielded', 'EncryptionSupported')
# Windows: -OtherFile, "Additional files (limited to 384KB) that should be
# encrypted at rest and copied to a provisioned virtual machine"
# (ShieldedVMDataFile/New-ShieldingDataFile.md); KB read as 1024 bytes.
OTHER_FILES_LIMIT = 384 * 1024


def make_shielding_data_file(owner: Guardian, guardians=(), *,
                             policy: str = 'Shielded',
                             answer_file: bytes = b'',
                             other_files: dict[str, bytes] | None = None,
                             volume_id_qualifiers=()) -> bytes:
    """A shielding data file (PDK) as a tenant makes it (simulated format).

    What ``New-ShieldingDataFile -Owner -Guardian -Policy -AnswerFile
    -OtherFile -VolumeIDQualifier`` does: a new KeyProtector owned by
    ``owner`` for ``guardians``, the security policy, the trusted template
    disks (``volume_id_qualifiers``, ``provisioning.volume_id_qualifier``'s)
    and the specialization answer file and other files, "encrypted until a
    shielded VM is provisioned" (here with AES-GCM under the
    KeyProtector's transport key, so only its parties' keys reach them).
    Only the clear parts are readable on a host (Msps_PDK: KeyProtector,
    PolicyData, RawData). ``vtpm_hyperv.fake.provisioning`` makes the files.

    :raises ValueError: an unknown policy, or other files over
        ``OTHER_FILES_LIMIT`` in all, which the cmdlet refuses.
    """
    if policy not in POLICIES:
        raise ValueError('policy must be one of %s' % ', '.join(POLICIES))
    other_files = dict(other_files or {})
    total = sum(len(content) for content in other_files.values())
    if total > OTHER_FILES_LIMIT:
        raise ValueError('other files hold %d bytes; New-ShieldingDataFile '
                         'takes at most %d' % (total, OTHER_FILES_LIMIT))
    transport_key = os.urandom(TRANSPORT_KEY_BYTES)
    kp = build_key_protector(owner, guardians, transport_key=transport_key)
    files = [(_ANSWER_FILE, answer_file)] + [
        (_OTHER_FILE + name, content)
        for name, content in sorted(other_files.items())]
    plain = b''.join(struct.pack('>HI', len(name.encode()), len(content))
                     + name.encode() + content for name, content in files)
    nonce = os.urandom(12)
    encrypted = nonce + aead.AESGCM(transport_key).encrypt(nonce, plain,
                                                           None)
    header = json.dumps({
        'key_protector': _b64(kp),
        'policy': _b64(json.dumps({'policy': policy}).encode()),
        'volume_id_qualifiers': list(volume_id_qualifiers)},
        sort_keys=True).encode()
    return PDK_MAGIC + struct.pack('>I', len(header)) + header + encrypted


# The names of the answer file and of an other file in the encrypted part.
_ANSWER_FILE = 'AnswerFile'
_OTHER_FILE = 'OtherFile/'


def read_shielding_data_file(data: bytes) -> tuple[bytes, bytes, bytes]:
    """(KeyProtector, PolicyData, RawData) of a PDK; RawData is the
    encrypted answer file and other files.

    :raises KeyProtectorError: not a shielding data file.
    """
    data = bytes(data)
    if not data.startswith(PDK_MAGIC):
        raise KeyProtectorError('not a shielding data file')
    try:
        start = len(PDK_MAGIC) + 4
        (length,) = struct.unpack('>I', data[len(PDK_MAGIC):start])
        header = json.loads(data[start:start + length])
        return (base64.b64decode(header['key_protector']),
                base64.b64decode(header['policy']), data[start + length:])
    except (ValueError, KeyError, TypeError, struct.error) as e:
        raise KeyProtectorError('malformed shielding data file') from e


def open_provisioning_files(data: bytes, private_key) -> tuple[bytes, dict]:
    """(answer file, other files) of a PDK, for a party of its
    KeyProtector (what provisioning does inside the VM).

    :raises UnwrapError: ``private_key`` is no party's.
    """
    kp, _, raw = read_shielding_data_file(data)
    transport_key = unwrap_key_protector(kp, private_key)
    plain = aead.AESGCM(transport_key).decrypt(raw[:12], raw[12:], None)
    files, offset = {}, 0
    while offset < len(plain):
        name_length, size = struct.unpack_from('>HI', plain, offset)
        offset += 6
        name = plain[offset:offset + name_length].decode()
        offset += name_length
        files[name] = plain[offset:offset + size]
        offset += size
    answer_file = files.pop(_ANSWER_FILE)
    return answer_file, {name[len(_OTHER_FILE):]: content
                         for name, content in files.items()}


# --- KeyProtector ------------------------------------------------------------

def _b64(data):
    return base64.b64encode(data).decode('ascii')


def _party(guardian, transport_key):
    wrapped = guardian.encryption_cert.public_key().encrypt(transport_key,
                                                            _OAEP)
    return {'name': guardian.name,
            'signing': _b64(guardian.signing_der),
            'encryption': _b64(guardian.encryption_der),
            'wrapped_key': _b64(wrapped)}


def _mac(transport_key, parties):
    canonical = json.dumps(parties, sort_keys=True).encode()
    return _b64(hmac.new(transport_key, canonical, hashlib.sha256).digest())


def build_key_protector(owner: Guardian, guardians=(), *,
                        transport_key: bytes | None = None,
                        kp_id: str | None = None,
                        signer: Guardian | None = None) -> bytes:
    """Make a KeyProtector's RawData, signed by ``owner``.

    A tenant's "raw KeyProtector" made with Microsoft's tools is, in this
    simulated world, made with this function. The signer (``owner``, or
    for a rolled KeyProtector one of ``guardians``) must hold its private
    signing key.
    """
    signer = signer or owner
    if signer.signing_key is None:
        raise ValueError('the guardian %s has no private signing key'
                         % signer.name)
    transport_key = transport_key or os.urandom(TRANSPORT_KEY_BYTES)
    everyone = [owner] + list(guardians)
    signer_index = next(i for i, g in enumerate(everyone)
                        if g.signing_der == signer.signing_der)
    parties = [_party(g, transport_key) for g in everyone]
    body = json.dumps({
        'id': kp_id or str(uuid.uuid4()),
        'owner': parties[0],
        'guardians': parties[1:],
        'signer': signer_index,
        'transport_key_mac': _mac(transport_key, parties),
    }, sort_keys=True).encode()
    signed = MAGIC + struct.pack('>I', len(body)) + body
    return signed + signer.signing_key.sign(signed, _PSS, hashes.SHA256())


@dataclasses.dataclass(frozen=True)
class ParsedKeyProtector:
    """What a KeyProtector says, after its owner's signature checked out."""

    kp_id: str
    owner: Guardian
    guardians: tuple[Guardian, ...]
    parties: tuple[dict, ...]
    transport_key_mac: str
    # the party whose signing key signed it: the owner, or for an egress
    # key protector the guardian that unwrapped the one before
    signer: Guardian = None


def _guardian_of(party):
    try:
        return Guardian(
            str(party['name']),
            x509.load_der_x509_certificate(base64.b64decode(party['signing'])),
            x509.load_der_x509_certificate(
                base64.b64decode(party['encryption'])))
    except (KeyError, TypeError, ValueError) as e:
        raise KeyProtectorError('malformed guardian entry: %s' % e) from e


def parse_key_protector(raw: bytes) -> ParsedKeyProtector:
    """Parse RawData and check the owner's signature.

    :raises KeyProtectorError: anything else.
    """
    raw = bytes(raw)
    if not raw.startswith(MAGIC) or len(raw) < len(MAGIC) + 4:
        raise KeyProtectorError('not a KeyProtector (bad header)')
    (length,) = struct.unpack('>I', raw[len(MAGIC):len(MAGIC) + 4])
    start = len(MAGIC) + 4
    if len(raw) <= start + length:
        raise KeyProtectorError('truncated KeyProtector')
    signed, signature = raw[:start + length], raw[start + length:]
    try:
        body = json.loads(raw[start:start + length])
        owner_party = body['owner']
        parties = [owner_party] + list(body['guardians'])
        kp_id = str(body['id'])
        mac = str(body['transport_key_mac'])
        signer = parties[int(body.get('signer', 0))]
    except (ValueError, KeyError, TypeError, IndexError) as e:
        raise KeyProtectorError('malformed KeyProtector body') from e
    owner = _guardian_of(owner_party)
    guardians = tuple(_guardian_of(p) for p in parties[1:])
    # Windows (MS-KPS 2.2.2.3, Protector): "GuardianSignature: ... computed
    # by using the signing certificate specified by WrappingId", one of the
    # protector's own wrappings: the owner, which "creates and signs a key
    # protector", or the guardian that unwrapped and made an egress one.
    # A signature by anyone else does not verify.
    signed_by = _guardian_of(signer)
    try:
        signed_by.signing_cert.public_key().verify(
            signature, signed, _PSS, hashes.SHA256())
    except Exception as e:  # noqa: BLE001 - any failure is a bad signature
        raise KeyProtectorError('the signature does not verify') from e
    return ParsedKeyProtector(kp_id, owner, guardians, tuple(parties), mac,
                              signed_by)


def unwrap_key_protector(raw: bytes, private_key: rsa.RSAPrivateKey) -> bytes:
    """Recover the transport key with an owner's or guardian's encryption key.

    :raises UnwrapError: the key is not one the KeyProtector was made for.
    :raises KeyProtectorError: the RawData is malformed or badly signed.
    """
    parsed = parse_key_protector(raw)
    # Try every wrapping: only real decryption decides, not bookkeeping.
    for party in parsed.parties:
        try:
            key = private_key.decrypt(base64.b64decode(party['wrapped_key']),
                                      _OAEP)
        except ValueError:
            continue
        if hmac.compare_digest(_mac(key, list(parsed.parties)),
                               parsed.transport_key_mac):
            return key
    raise UnwrapError('the key is not the owner\'s nor any guardian\'s of '
                      'this KeyProtector')
