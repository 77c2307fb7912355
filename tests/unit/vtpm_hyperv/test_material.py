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


def _pfx(key, cert):
    return pkcs12.serialize_key_and_certificates(
        None, key, cert, None, serialization.NoEncryption())


def test_owner_bundle(guardians):
    g = guardians['owner']
    payload = bytearray(fake.export_owner_pkcs12(g))
    m = material.parse(REF, payload)
    assert m.kind == material.OWNER
    assert m.signing_der == g.signing_der
    assert m.signing[1] == g.signing_cert
    assert m.encryption[1] == g.encryption_cert
    assert m.encryption[0].private_numbers() == \
        g.encryption_key.private_numbers()
    assert m.payload is payload  # read in place, so the caller can wipe it
    assert 'PRIVATE' not in repr(m) and REF in repr(m)


def test_guardian_file(guardians):
    payload = fake.export_guardian_file(guardians['dr'])
    m = material.parse(REF, payload)
    assert m.kind == material.GUARDIAN and m.payload is payload


@pytest.mark.parametrize('encoding', ['PEM', 'DER'])
def test_certificates_alone_are_refused_with_the_way_to_fix_it(
        guardians, encoding):
    """No documented call imports a guardian from bare certificates."""
    with pytest.raises(exception.InvalidKeyMaterial) as err:
        material.parse(REF, fake.export_guardian_certificates(
            guardians['dr'], encoding))
    assert 'Export-HgsGuardian' in str(err.value) and REF in str(err.value)


def test_tenant_artifacts_are_left_to_hyper_v(guardians, fabric):
    raw = fake.build_key_protector(guardians['owner'],
                                   [fabric.guardian.public()])
    pdk = fake.make_shielding_data_file(guardians['owner'],
                                        [fabric.guardian.public()])
    for payload in (raw, pdk):
        assert material.parse(REF, payload).kind == \
            material.TENANT_ARTIFACT


@pytest.mark.parametrize('payload, problem', [
    # empty secret
    (b'', 'empty'),
    # too short to be anything
    (b'\x00' * 40, 'too short'),
    # a DER SEQUENCE that is neither PKCS#12 nor a certificate
    (b'\x30\x03\x02\x01\x01', 'too short'),
], ids=['empty', 'short-bytes', 'der-not-a-cert'])
def test_unusable_payload_names_the_secret(payload, problem):
    with pytest.raises(exception.InvalidKeyMaterial) as err:
        material.parse(REF, payload)
    assert err.value.ref == REF
    assert REF in str(err.value) and problem in str(err.value)


@pytest.mark.parametrize('build, problem', [
    # one PKCS#12 file: the encryption key is missing
    (lambda g: _pfx(g.signing_key, g.signing_cert), '1 DER structure'),
    # the files in the wrong order
    (lambda g: _pfx(g.encryption_key, g.encryption_cert)
     + _pfx(g.signing_key, g.signing_cert), 'signing certificate'),
    # a file without its private key
    (lambda g: _pfx(g.signing_key, g.signing_cert)
     + pkcs12.serialize_key_and_certificates(
         None, None, None, [g.encryption_cert],
         serialization.NoEncryption()), 'private key'),
], ids=['one-file', 'wrong-order', 'no-key'])
def test_malformed_owner_bundles_are_refused(guardians, build, problem):
    with pytest.raises(exception.InvalidKeyMaterial, match=problem):
        material.parse(REF, build(guardians['owner']))


# --- sets --------------------------------------------------------------------

def _m(ref, kind, payload=b''):
    return material.Material(ref, kind, payload)


def test_owner_plus_five_guardians_is_valid():
    owner = _m('o', material.OWNER)
    ks = material.check_set(
        [owner] + [_m('g%d' % i, material.GUARDIAN, b'<%d/>' % i)
                   for i in range(5)])
    assert ks.owner is owner and len(ks.guardians) == 5
    assert ks.artifact is None


def test_artifact_alone_is_valid():
    artifact = _m('r', material.TENANT_ARTIFACT)
    assert material.check_set([artifact]).artifact is artifact


@pytest.mark.parametrize('kinds, names', [
    # guardians without an owner
    (['GUARDIAN'], 'no owner'),
    # two owners
    (['OWNER', 'OWNER'], 'all owner bundles'),
    # a tenant artifact mixed with an owner
    (['ARTIFACT', 'OWNER'], 'must be the only secret'),
    # two tenant artifacts
    (['ARTIFACT', 'ARTIFACT'], 'must be the only secret'),
    # the same guardian file twice
    (['OWNER', 'GUARDIAN', 'GUARDIAN'], 'same guardian'),
    # six guardians
    (['OWNER'] + ['GUARDIAN%d' % i for i in range(6)], 'at most 5'),
], ids=['no-owner', 'two-owners', 'artifact-mixed', 'two-artifacts',
        'duplicate', 'six-guardians'])
def test_invalid_sets_name_the_secrets(kinds, names):
    def make(i, k):
        if k.startswith('GUARDIAN'):
            return _m('secret-%d' % i, material.GUARDIAN,
                      b'<g%s/>' % k[8:].encode())
        return _m('secret-%d' % i, {
            'OWNER': material.OWNER,
            'ARTIFACT': material.TENANT_ARTIFACT}[k])
    with pytest.raises(exception.InvalidKeySet) as err:
        material.check_set([make(i, k) for i, k in enumerate(kinds)])
    assert names in str(err.value)
    if 'at most' not in names:
        assert 'secret-' in str(err.value)


# --- properties --------------------------------------------------------------

@hypothesis.given(payload=st.binary(max_size=2048))
def test_random_bytes_are_a_vtpm_error_or_left_to_hyper_v(payload):
    """Any bytes classify as a guardian file or tenant artifact (which
    Windows then reads) or raise InvalidKeyMaterial naming the secret;
    never another exception."""
    try:
        m = material.parse(REF, payload)
    except exception.InvalidKeyMaterial as e:
        assert e.ref == REF
        return
    assert m.kind in (material.TENANT_ARTIFACT, material.GUARDIAN)


@hypothesis.given(data=st.data())
def test_mutated_material_is_a_vtpm_error_or_still_material(guardians, data):
    """Flipping bytes of real material never raises anything but a
    VTPMError."""
    source = data.draw(st.sampled_from([
        fake.export_owner_pkcs12(guardians['owner']),
        fake.export_guardian_certificates(guardians['dr'], 'DER'),
        fake.export_guardian_file(guardians['dr']),
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
