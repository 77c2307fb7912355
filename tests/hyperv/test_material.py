# SPDX-License-Identifier: Apache-2.0
"""Key material: what each secret is, and which sets are valid."""

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12
import hypothesis
from hypothesis import strategies as st
import pytest

from vtpm_core import exception
from vtpm_hyperv import fake
from vtpm_hyperv import material

REF = '0b6e2b14-8d3c-4b8e-9b59-3f1c5f0b7a11'


def _pem_key(key):
    return key.private_bytes(serialization.Encoding.PEM,
                             serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


@pytest.mark.parametrize('encoding', ['PEM', 'DER'])
def test_guardian_certificates(guardians, encoding):
    g = guardians['dr']
    m = material.parse(REF, fake.export_guardian_certificates(g, encoding))
    assert m.kind is material.Kind.GUARDIAN
    assert m.signing_der == g.signing_der
    assert m.encryption_der == g.encryption_der


def test_owner_bundle(guardians):
    g = guardians['owner']
    payload = bytearray(fake.export_owner_pkcs12(g))
    m = material.parse(REF, payload)
    assert m.kind is material.Kind.OWNER
    assert m.signing_der == g.signing_der
    assert m.encryption_der == g.encryption_der
    assert m.payload is payload  # read in place, so the caller can wipe it
    assert 'PRIVATE' not in repr(m) and REF in repr(m)


def test_pkcs12_without_key_is_a_guardian(guardians):
    g = guardians['dr']
    bundle = pkcs12.serialize_key_and_certificates(
        None, None, None, [g.signing_cert, g.encryption_cert],
        serialization.NoEncryption())
    assert material.parse(REF, bundle).kind is material.Kind.GUARDIAN


def test_raw_key_protector_candidate(guardians):
    raw = fake.build_key_protector(guardians['owner'])
    assert material.parse(REF, raw).kind is material.Kind.RAW_KEY_PROTECTOR


@pytest.mark.parametrize('payload, problem', [
    # empty secret
    (b'', 'empty'),
    # too short to be anything
    (b'\x00' * 40, 'too short'),
    # a DER SEQUENCE that is no certificate
    (b'\x30\x03\x02\x01\x01', 'too short'),
    # PEM text without a certificate
    (b'-----BEGIN NOTHING-----\nAAAA\n-----END NOTHING-----\n',
     'no readable certificate'),
], ids=['empty', 'short-bytes', 'der-not-a-cert', 'pem-without-cert'])
def test_unusable_payload_names_the_secret(payload, problem):
    with pytest.raises(exception.InvalidKeyMaterial) as err:
        material.parse(REF, payload)
    assert err.value.ref == REF
    assert REF in str(err.value) and problem in str(err.value)


def test_one_certificate_is_not_a_guardian(guardians):
    g = guardians['dr']
    one = g.signing_cert.public_bytes(serialization.Encoding.PEM)
    with pytest.raises(exception.InvalidKeyMaterial, match='1 certificate'):
        material.parse(REF, one)


def test_pem_private_key_is_refused(guardians):
    g = guardians['owner']
    payload = fake.export_guardian_certificates(g) + _pem_key(g.signing_key)
    with pytest.raises(exception.InvalidKeyMaterial, match='PKCS#12'):
        material.parse(REF, payload)


def test_bundle_with_the_encryption_key_is_refused(guardians):
    g = guardians['owner']
    bundle = pkcs12.serialize_key_and_certificates(
        b'x', g.encryption_key, g.encryption_cert, [g.signing_cert],
        serialization.NoEncryption())
    with pytest.raises(exception.InvalidKeyMaterial,
                       match='private signing key'):
        material.parse(REF, bundle)


# --- sets --------------------------------------------------------------------

def _m(ref, kind, guardian=None):
    return material.Material(
        ref, kind, b'', guardian.signing_cert if guardian else None,
        guardian.encryption_cert if guardian else None)


def test_owner_plus_five_guardians_is_valid(guardians):
    extra = [fake.make_guardian('g%d' % i, reuse_keys=True)
             for i in range(5)]
    owner = _m('o', material.Kind.OWNER, guardians['owner'])
    ks = material.check_set(
        [owner] + [_m('g%d' % i, material.Kind.GUARDIAN, g)
                   for i, g in enumerate(extra)])
    assert ks.owner is owner and len(ks.guardians) == 5 and ks.raw is None


def test_raw_alone_is_valid():
    raw = _m('r', material.Kind.RAW_KEY_PROTECTOR)
    assert material.check_set([raw]).raw is raw


@pytest.mark.parametrize('kinds, names', [
    # guardians without an owner
    (['GUARDIAN'], 'no owner'),
    # two owners
    (['OWNER', 'OWNER2'], 'all owner bundles'),
    # a raw KeyProtector mixed with an owner
    (['RAW', 'OWNER'], 'must be the only secret'),
    # two raw KeyProtectors
    (['RAW', 'RAW'], 'must be the only secret'),
    # the same guardian twice
    (['OWNER', 'GUARDIAN', 'GUARDIAN'], 'same guardian'),
], ids=['no-owner', 'two-owners', 'raw-mixed', 'two-raw', 'duplicate'])
def test_invalid_sets_name_the_secrets(guardians, kinds, names):
    table = {
        'OWNER': (material.Kind.OWNER, guardians['owner']),
        'OWNER2': (material.Kind.OWNER, guardians['owner2']),
        'GUARDIAN': (material.Kind.GUARDIAN, guardians['dr']),
        'RAW': (material.Kind.RAW_KEY_PROTECTOR, None),
    }
    items = [_m('secret-%d' % i, *table[k]) for i, k in enumerate(kinds)]
    with pytest.raises(exception.InvalidKeySet) as err:
        material.check_set(items)
    assert names in str(err.value)
    assert 'secret-' in str(err.value)


# --- properties --------------------------------------------------------------

@hypothesis.given(payload=st.binary(max_size=2048))
def test_random_bytes_are_a_vtpm_error_or_a_raw_candidate(payload):
    """Any bytes classify as a raw KeyProtector candidate (which Hyper-V
    then reads) or raise InvalidKeyMaterial naming the secret; never
    another exception."""
    try:
        m = material.parse(REF, payload)
    except exception.InvalidKeyMaterial as e:
        assert e.ref == REF
        return
    assert m.kind is material.Kind.RAW_KEY_PROTECTOR
    assert len(payload) >= material.MIN_RAW_KEY_PROTECTOR_BYTES


@hypothesis.given(data=st.data())
def test_mutated_material_is_a_vtpm_error_or_still_material(guardians, data):
    """Flipping bytes of real material never raises anything but a
    VTPMError."""
    source = data.draw(st.sampled_from([
        fake.export_owner_pkcs12(guardians['owner']),
        fake.export_guardian_certificates(guardians['dr'], 'DER'),
        fake.export_guardian_certificates(guardians['dr'], 'PEM'),
    ]))
    payload = bytearray(source)
    for _ in range(data.draw(st.integers(1, 8))):
        i = data.draw(st.integers(0, len(payload) - 1))
        payload[i] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(1, len(payload)))
    try:
        material.parse(REF, bytes(payload[:cut]))
    except exception.VTPMError as e:
        assert REF in str(e)
