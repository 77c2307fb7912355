# SPDX-License-Identifier: Apache-2.0
"""Key material: what each secret is, and which sets are valid."""

import builtins
import os
import uuid

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12
import hypothesis
from hypothesis import strategies as st
import pytest

from vtpm_core import exception
from vtpm_hyperv import fake
from vtpm_hyperv import keyprotector
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


# --- key material that no Windows API takes: refused in memory ---------------

def _private_keys(g):
    key = g.signing_key
    pkcs8 = serialization.PrivateFormat.PKCS8
    return {
        'PKCS#8 DER': key.private_bytes(serialization.Encoding.DER, pkcs8,
                                        serialization.NoEncryption()),
        'PKCS#8 PEM': key.private_bytes(serialization.Encoding.PEM, pkcs8,
                                        serialization.NoEncryption()),
        'PKCS#1 DER': key.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption()),
        'encrypted PKCS#8 DER': key.private_bytes(
            serialization.Encoding.DER, pkcs8,
            serialization.BestAvailableEncryption(b'tenant-password')),
        'PKCS#12 with a password': pkcs12.serialize_key_and_certificates(
            None, key, g.signing_cert, None,
            serialization.BestAvailableEncryption(b'tenant-password')),
    }


@pytest.mark.parametrize('form', ['PKCS#8 DER', 'PKCS#8 PEM', 'PKCS#1 DER',
                                  'encrypted PKCS#8 DER',
                                  'PKCS#12 with a password'])
def test_private_keys_alone_are_refused_before_anything_is_written(
        guardians, form):
    payload = _private_keys(guardians['owner'])[form]
    assert len(payload) >= material.MIN_ARTIFACT_BYTES  # not refused as short
    with pytest.raises(exception.InvalidKeyMaterial) as err:
        material.parse(REF, payload)
    message = str(err.value)
    assert REF in message and 'allowed: an owner bundle' in message
    assert ('private key alone' in message
            or 'protected by a password' in message)


def test_a_blob_larger_than_any_tenant_artifact_is_refused():
    with pytest.raises(exception.InvalidKeyMaterial, match='larger than'):
        material.parse(REF, b'\x01' * (material.MAX_ARTIFACT_BYTES + 1))


# --- every file the backend writes, on every attach path ---------------------

class Writes:
    """Every file created while it is installed, read before removal.

    Windows' API takes files by path (``keyprotector.PrivateFiles``); any
    file created in this process (``os.open`` with ``O_CREAT``, or
    ``open`` for writing) is recorded, and its bytes read when its private
    directory is removed, or at the end.
    """

    def __init__(self, monkeypatch):
        self.created = []
        self.contents = {}
        real_open, real_builtin = os.open, builtins.open
        real_exit = keyprotector.PrivateFiles.__exit__

        def os_open(path, flags, *args, **kwargs):
            if flags & os.O_CREAT:
                self.created.append(os.fspath(path))
            return real_open(path, flags, *args, **kwargs)

        def builtin_open(file, mode='r', *args, **kwargs):
            if isinstance(file, (str, bytes, os.PathLike)) and \
                    set(mode) & set('wax'):
                self.created.append(os.fspath(file))
            return real_builtin(file, mode, *args, **kwargs)

        def private_exit(files, *exc):
            self.read()
            return real_exit(files, *exc)
        monkeypatch.setattr(os, 'open', os_open)
        monkeypatch.setattr(builtins, 'open', builtin_open)
        monkeypatch.setattr(keyprotector.PrivateFiles, '__exit__',
                            private_exit)

    def read(self):
        for path in self.created:
            if path not in self.contents and os.path.isfile(path):
                with open(path, 'rb') as f:
                    self.contents[path] = f.read()


def _key_material(data, secrets):
    """Why ``data`` is key material in clear, or None."""
    for password in (None, b''):
        try:
            if pkcs12.load_pkcs12(data, password).key is not None:
                return 'a PKCS#12 file that opens without a password'
        except (ValueError, TypeError):
            pass
    for load in (serialization.load_der_private_key,
                 serialization.load_pem_private_key):
        try:
            load(data, None)
            return 'a private key'
        except (ValueError, TypeError, UnsupportedAlgorithm):
            pass
    for name, secret in secrets.items():
        if secret in data:
            return 'the bytes of secret %s' % name
    return None


def _attach_cases(guardians, fabric):
    owner = guardians['owner']
    parties = [fabric.guardian.public(), guardians['dr'].public()]
    keys = _private_keys(owner)
    return {
        # the attach paths, with what Windows needs as files
        'owner bundle and a guardian file': (
            [fake.export_owner_pkcs12(owner),
             fake.export_guardian_file(guardians['dr'])], False),
        'raw KeyProtector': (
            [fake.build_key_protector(owner, parties)], False),
        'PDK': ([fake.make_shielding_data_file(owner, parties)], False),
        'shielded, raw KeyProtector': (
            [fake.build_key_protector(owner, parties)], True),
        'shielded, PDK': (
            [fake.make_shielding_data_file(owner, parties)], True),
        'no keys': ([], False),
        # unparseable and wrong-type secrets
        'an owner bundle for a shielded VM': (
            [fake.export_owner_pkcs12(owner)], True),
        'random bytes': ([os.urandom(4096)], False),
        'a too-large blob': (
            [os.urandom(material.MAX_ARTIFACT_BYTES + 1)], False),
        **{'a bare %s' % form: ([payload], False)
           for form, payload in keys.items()},
        'an owner bundle and a bare PKCS#8 key': (
            [fake.export_owner_pkcs12(owner), keys['PKCS#8 DER']], False),
    }


def _read_from_file(payload, guardians, fabric):
    """Whether Windows' documented API reads ``payload`` from a file: a
    guardian file (public certificates: MSFT_HgsGuardian.Import), or what
    Hyper-V does not read as a raw KeyProtector, as a shielding data file
    (Msps_ProvisioningFileProcessor.PopulateFromFile; a PDK keeps its
    private parts encrypted), once no check in memory refused it."""
    if payload.lstrip().startswith(b'<'):
        return True
    try:
        kind = material.parse(REF, payload).kind
    except exception.InvalidKeyMaterial:
        return False
    try:
        fake.parse_key_protector(payload)
        return False  # Hyper-V reads it in memory
    except fake.KeyProtectorError:
        return kind == material.TENANT_ARTIFACT


def test_no_attach_writes_key_material_in_clear(
        make_backend, keys, guardians, fabric, monkeypatch, tmp_path):
    """Rule: on every attach path, including unparseable and wrong-type
    secrets, no file the backend writes holds a private key (any form
    cryptography reads), a PKCS#12 file that opens without a password, or
    the bytes of a secret other than those Windows reads from a file; and
    the private directory is empty afterwards."""
    from tests.fixtures import hyperv
    writes = Writes(monkeypatch)
    found, refused = [], []
    for case, (payloads, shielded) in _attach_cases(guardians,
                                                    fabric).items():
        host = fake.FakeHyperVHost('hv-w-%s' % uuid.uuid4().hex[:6],
                                   fabric=fabric)
        host.add_vm(hyperv.VM)
        refs = [keys.add(p) for p in payloads]
        secrets = {'%s #%d' % (case, i): p for i, p in enumerate(payloads)
                   if not _read_from_file(p, guardians, fabric)}
        writes.created.clear()
        writes.contents.clear()
        try:
            make_backend(host, private_dir=str(tmp_path)).attach(
                str(uuid.uuid4()), hyperv.VM,
                hyperv.vtpm_request(refs, shielded=shielded))
        except exception.VTPMError:
            refused.append(case)
        writes.read()
        for path, data in writes.contents.items():
            why = _key_material(data, secrets)
            if why:
                found.append('%s: %s is %s' % (case, path, why))
        if list(tmp_path.iterdir()):
            found.append('%s: left %s' % (case, list(tmp_path.iterdir())))
        host.close()
    assert found == [], '\n'.join(found)
    # every wrong-type secret was refused; every attach path wrote its files
    assert set(refused) == {c for c in _attach_cases(guardians, fabric)
                            if c.startswith(('a ', 'an ', 'random'))}
