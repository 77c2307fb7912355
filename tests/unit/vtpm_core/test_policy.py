# SPDX-License-Identifier: Apache-2.0
"""Table tests: a row per cell of the merge table and per rule of the keys."""

import pytest

from tests import merge_table
from vtpm_core import exception
from vtpm_core import objects
from vtpm_core import policy

GEN2 = {'hw_machine_type': 'hyperv-gen2'}
K1 = '8f14e45f-ceea-467a-9575-7a6c8c2b3a11'
K2 = '45c48cce-2e2d-4fbd-a7b0-9ea0e5e4a1b2'
SIX = ['%08x-0000-4000-8000-%012x' % (i, i) for i in range(6)]


# outcome of each cell of our keys alone
_OURS = {(r.image, r.flavor): r.outcome for r in merge_table.rows()
         if r.nova is None}


@pytest.mark.parametrize('row', list(merge_table.rows()), ids=[
    merge_table.row_id(r) for r in merge_table.rows()])
def test_merge_table(row):
    image, flavor = merge_table.request(row)
    if row.outcome == 'conflict':
        with pytest.raises((exception.PolicyConflict,
                            exception.TPMPropertyConflict)) as e:
            policy.build_request(image, flavor)
        message = str(e.value)
        if row.nova is None:
            # A conflict names both sides, with their values.
            assert isinstance(e.value, exception.PolicyConflict)
            assert ("os:vtpm (flavor extra spec) is %r" % row.flavor
                    in message)
            # an absent key is named as the "why" of a request names it
            assert "os_vtpm (image property) is %s:" % (
                repr(row.image) if row.image else 'absent') in message
        else:
            # nova's key that asked, and the key that refuses; or, where
            # our keys alone conflict across the sides, that conflict
            nova_key = ('hw:tpm_version (flavor extra spec)'
                        if row.nova == 'flavor'
                        else 'hw_tpm_version (image property)')
            assert ("%s is '2.0'" % nova_key in message
                    or (_OURS[row.image, row.flavor] == 'conflict'
                        and isinstance(e.value, exception.PolicyConflict)))
        return
    request = policy.build_request(image, flavor)
    assert isinstance(request, objects.VTPMRequest)
    assert request.enabled is (row.outcome == 'on')
    if row.nova is None:
        assert request.image_policy == (row.image or 'disabled')
        assert request.flavor_policy == row.flavor
    else:
        # nova's version requires a vTPM from its side
        assert 'required' in (request.image_policy, request.flavor_policy)


def test_table_covers_every_cell():
    cells = {(r.image, r.flavor, r.nova) for r in merge_table.rows()}
    values = (None, 'disabled', 'optional', 'required')
    assert cells == {(i, f, n) for i in values for f in values
                     for n in (None, 'image', 'flavor')}
    assert len(list(merge_table.rows())) == len(cells)


REQUIRED = {'os_vtpm': 'required', **GEN2}

# (id, image properties on top of REQUIRED, expected key_refs)
KEYS_ACCEPTED = [
    ('one key', {'os_vtpm_keys': K1}, [K1]),
    ('six keys, the maximum', {'os_vtpm_keys': ','.join(SIX)}, SIX),
    ('uppercase becomes canonical lowercase',
     {'os_vtpm_keys': K1.upper()}, [K1]),
    ('whitespace around items is ignored',
     {'os_vtpm_keys': '  %s ,\t%s ' % (K1, K2)}, [K1, K2]),
    ('order is kept', {'os_vtpm_keys': '%s,%s' % (K2, K1)}, [K2, K1]),
    ('251 characters, the most nova never cuts',
     {'os_vtpm_keys': ' ' * 30 + ','.join(SIX)}, SIX),
    ('a trailing newline, as from a file', {'os_vtpm_keys': K1 + '\n'}, [K1]),
    ('no keys: a new local key protector', {}, []),
]


@pytest.mark.parametrize('image,expected', [r[1:] for r in KEYS_ACCEPTED],
                         ids=[r[0] for r in KEYS_ACCEPTED])
def test_keys_accepted(image, expected):
    request = policy.build_request(dict(REQUIRED, **image), {})
    assert request.key_refs == expected


# (id, os_vtpm_keys value, text the message must contain)
KEYS_REFUSED = [
    # counted, not measured (258 bytes): the count says what to change
    ('seven UUIDs do not fit', ','.join(SIX + [K1]), '7 keys'),
    ('seven items', 'a,b,c,d,e,f,g', '7 keys'),
    ('empty value', '', 'item 1 is empty'),
    ('empty item in the middle', '%s,,%s' % (K1, K2), 'item 2 is empty'),
    ('trailing comma', '%s,' % K1, 'item 2 is empty'),
    ('blank item', '%s, ,%s' % (K1, K2), 'item 2 is empty'),
    ('duplicate after canonicalisation', '%s,%s' % (K1, K1.upper()),
     'item 2 (%s) is a duplicate' % K1),
    ('not a UUID', '%s,secret-1' % K1, "item 2 ('secret-1') is not a UUID"),
    # whitespace does not separate keys; the message says what does
    ('two UUIDs separated by a space', '%s %s' % (K1, K2),
     "item 1 ('%s %s') holds 2 UUIDs separated by whitespace, which is one "
     'item; separate keys with commas' % (K1, K2)),
    ('UUID without hyphens', K1.replace('-', ''), 'is not a UUID'),
    ('URN form', 'urn:uuid:' + K1, 'is not a UUID'),
    # nova keeps 255 bytes, cutting a split character; a cut copy has 252
    # to 255, so the compute host could not tell these from a cut one
    ('252 characters', ' ' * 31 + ','.join(SIX), '252 bytes in UTF-8'),
    ('255 characters', ' ' * 34 + ','.join(SIX), '255 bytes in UTF-8'),
    # nova's copy would keep K1 and K2 and drop K3 silently
    ('ideographic spaces push the last key past nova\'s cut',
     K1 + ',' + K2 + '\u3000' * 100 + ',' + SIX[0], '410 bytes in UTF-8'),
    ('non-ASCII whitespace around an item', K1 + '\u00a0,' + K2,
     "item 1 ('%s\\xa0') is not a UUID" % K1),
    ('not encodable in UTF-8', K1 + '\ud800', 'not encodable in UTF-8'),
]


@pytest.mark.parametrize('raw,fragment', [r[1:] for r in KEYS_REFUSED],
                         ids=[r[0] for r in KEYS_REFUSED])
def test_keys_refused(raw, fragment):
    with pytest.raises(exception.InvalidKeyList) as e:
        policy.build_request(dict(REQUIRED, os_vtpm_keys=raw), {})
    message = str(e.value)
    assert fragment in message
    assert message.startswith(
        'os_vtpm_keys (image property) is %s' % exception.excerpt(raw))
    assert ('allowed: 1 to 6 Barbican secret UUIDs separated by commas '
            '(ASCII whitespace around each is ignored), at most 251 '
            'characters in all') in message
    assert e.value.value == raw


@pytest.mark.parametrize('image,specs', [
    ({'os_vtpm_keys': K1}, {}),
    ({'os_vtpm': 'optional', 'os_vtpm_keys': K1}, {}),
    ({'os_vtpm': 'optional', 'os_vtpm_keys': K1}, {'os:vtpm': 'optional'}),
], ids=['image absent', 'image optional, flavor absent',
        'image optional, flavor optional'])
def test_keys_need_the_vtpm_on(image, specs):
    with pytest.raises(exception.KeysWithoutVTPM) as e:
        policy.build_request(dict(GEN2, **image), specs)
    assert str(e.value).startswith(
        "os_vtpm_keys (image property) is %r but the vTPM is off" % K1)


# (id, hw_machine_type or None, vTPM on?, accepted?)
MACHINE_TYPES = [
    ('vTPM on, Gen2', 'hyperv-gen2', True, True),
    ('vTPM on, absent', None, True, False),
    ('vTPM on, Gen1', 'hyperv-gen1', True, False),
    ('vTPM on, case differs', 'HyperV-Gen2', True, False),
    ('vTPM off, absent', None, False, True),
    ('vTPM off, Gen1', 'hyperv-gen1', False, True),
]


@pytest.mark.parametrize('machine_type,on,accepted',
                         [r[1:] for r in MACHINE_TYPES],
                         ids=[r[0] for r in MACHINE_TYPES])
def test_machine_type(machine_type, on, accepted):
    image = {'os_vtpm': 'required' if on else 'disabled'}
    if machine_type is not None:
        image['hw_machine_type'] = machine_type
    if accepted:
        request = policy.build_request(image, {})
        assert request.enabled is on
        assert request.machine_type == machine_type
    else:
        with pytest.raises(exception.MachineTypeNotSupported) as e:
            policy.build_request(image, {})
        assert str(e.value) == (
            "hw_machine_type (image property) is %s but a vTPM needs a "
            "Generation 2 VM; allowed: hyperv-gen2"
            % (repr(machine_type) if machine_type else 'absent'))


# (id, hw_machine_type, vTPM on?, text the message must contain): values
# that nova's copy would change, refused whether the vTPM is on or off
MACHINE_TYPES_NOT_COPYABLE = [
    ('a list, vTPM off', ['hyperv-gen2'], False,
     "is ['hyperv-gen2']: not a string"),
    ('a list, vTPM on', ['hyperv-gen2'], True,
     "is ['hyperv-gen2']: not a string"),
    ('an integer, vTPM off', 2, False, 'is 2: not a string'),
    ('None, vTPM off', None, False, 'is None: not a string'),
    ('longer than nova keeps, vTPM off', 'x' * 300, False,
     '300 bytes in UTF-8'),
    ('252 bytes of 2-byte characters', '\u00e9' * 126, False,
     '252 bytes in UTF-8'),
    ('a lone surrogate', 'hyperv-gen2\ud800', False,
     'not encodable in UTF-8'),
]


@pytest.mark.parametrize('machine_type,on,fragment',
                         [r[1:] for r in MACHINE_TYPES_NOT_COPYABLE],
                         ids=[r[0] for r in MACHINE_TYPES_NOT_COPYABLE])
def test_machine_type_that_nova_would_change_is_refused(machine_type, on,
                                                        fragment):
    image = {'os_vtpm': 'required' if on else 'disabled',
             'hw_machine_type': machine_type}
    with pytest.raises(exception.PropertyNotCopyable) as e:
        policy.build_request(image, {})
    assert str(e.value).startswith('hw_machine_type (image property) ')
    assert fragment in str(e.value)
    assert str(e.value).endswith(
        'allowed: a string of at most 251 bytes in UTF-8, which nova copies '
        'to the instance unchanged')


def test_machine_type_of_251_bytes_is_kept_while_the_vtpm_is_off():
    machine_type = '\u00e9' * 125 + 'x'
    assert policy.build_request({'hw_machine_type': machine_type},
                                {}).machine_type == machine_type


# (id, image properties, flavor extra specs): a key given the value None is
# refused; only a missing key is absent
NONE_VALUES = [
    ('os_vtpm', {'os_vtpm': None}, {}),
    ('os:vtpm', {}, {'os:vtpm': None}),
    ('os_vtpm_keys', {'os_vtpm': 'required', 'os_vtpm_keys': None}, {}),
    ('hw_machine_type', {'hw_machine_type': None}, {}),
    ('os_shielded_vm', {'os_shielded_vm': None}, {}),
]


@pytest.mark.parametrize('key,image,specs', NONE_VALUES,
                         ids=[r[0] for r in NONE_VALUES])
def test_none_is_refused_not_read_as_absent(key, image, specs):
    with pytest.raises(exception.InvalidVTPMRequest) as e:
        policy.build_request(dict(GEN2, **image), specs)
    assert str(e.value).startswith('%s (' % key)
    assert ' is None' in str(e.value)


def test_nested_image_properties_are_refused():
    # nova's glance.API().get() returns the image with its properties nested
    image = {'id': 'a8b2c0d4-0000-4000-8000-000000000001', 'name': 'win',
             'properties': dict(REQUIRED, os_vtpm_keys=K1)}
    with pytest.raises(exception.NestedImageProperties) as e:
        policy.build_request(image, {})
    assert str(e.value).startswith(
        "properties (image property) is {'hw_machine_type': 'hyperv-gen2', ")
    assert 'pass the flat properties' in str(e.value)
    assert "image['properties']" in str(e.value)
    # a string called properties is a property like any other
    assert policy.build_request(dict(REQUIRED, properties='x'), {}).enabled


# (id, image properties on top of Gen2, shielded or the error class)
SHIELDING = [
    ('required with vTPM and a key',
     {'os_vtpm': 'required', 'os_vtpm_keys': K1, 'os_shielded_vm': 'required'},
     True),
    ('disabled', {'os_vtpm': 'required', 'os_shielded_vm': 'disabled'}, False),
    ('absent means disabled', {'os_vtpm': 'required'}, False),
    ('required without keys', {'os_vtpm': 'required',
                               'os_shielded_vm': 'required'},
     exception.ShieldingNotPossible),
    ('required with the vTPM off', {'os_shielded_vm': 'required'},
     exception.ShieldingNotPossible),
    ('not an allowed value', {'os_vtpm': 'required', 'os_vtpm_keys': K1,
                              'os_shielded_vm': 'optional'},
     exception.InvalidPropertyValue),
]


@pytest.mark.parametrize('image,expected', [r[1:] for r in SHIELDING],
                         ids=[r[0] for r in SHIELDING])
def test_shielding(image, expected):
    if isinstance(expected, bool):
        assert policy.build_request(dict(GEN2, **image), {}).shielded is \
            expected
    else:
        with pytest.raises(expected) as e:
            policy.build_request(dict(GEN2, **image), {})
        assert str(e.value).startswith(
            'os_shielded_vm (image property) is %r' % image['os_shielded_vm'])


@pytest.mark.parametrize('key,source,value,mapping', [
    ('os_vtpm', 'image property', 'Required', 'image'),
    ('os_vtpm', 'image property', '', 'image'),
    ('os:vtpm', 'flavor extra spec', 'yes', 'flavor'),
    ('os:vtpm', 'flavor extra spec', ' required', 'flavor'),
], ids=['image: case differs', 'image: empty', 'flavor: yes',
        'flavor: leading space'])
def test_policy_values_are_exact(key, source, value, mapping):
    image, flavor = dict(GEN2), {}
    (image if mapping == 'image' else flavor)[key] = value
    with pytest.raises(exception.InvalidPropertyValue) as e:
        policy.build_request(image, flavor)
    assert str(e.value) == (
        '%s (%s) is %r; allowed: disabled, optional, required'
        % (key, source, value))
    assert (e.value.key, e.value.source, e.value.value) == (key, source, value)


def test_unrelated_properties_and_specs_are_ignored():
    image = dict(REQUIRED, os_distro='windows', hw_tpm_extra='1.2',
                 os_vtpm_extra='x')
    specs = {'hw:cpu_policy': 'dedicated', 'os:secure_boot': 'required',
             'os:vtpm_keys': 'nonsense'}
    assert policy.build_request(image, specs) == \
        policy.build_request(REQUIRED, {})


def test_errors_are_value_errors_and_vtpm_errors():
    with pytest.raises(ValueError):
        policy.build_request({'os_vtpm': 'bogus'}, {})
    assert issubclass(exception.PolicyConflict, exception.VTPMError)


@pytest.mark.parametrize('specs,machine_type,settles', [
    # a disabled flavor: no vTPM or a conflict, whatever the image says
    ({'os:vtpm': 'disabled'}, 'hyperv-gen2', True),
    # not Generation 2: no vTPM, or an invalid request
    ({'os:vtpm': 'required'}, None, True),
    ({}, 'hyperv-gen1', True),
    ({}, 'Hyperv-Gen2', True),
    # Generation 2 under any other flavor: the image decides
    ({'os:vtpm': 'required'}, 'hyperv-gen2', False),
    ({'os:vtpm': 'optional'}, 'hyperv-gen2', False),
    ({}, 'hyperv-gen2', False),
], ids=['flavor-disabled', 'required-no-machine-type', 'gen1',
        'gen2-misspelt', 'required-gen2', 'optional-gen2', 'absent-gen2'])
def test_settled_without_image(specs, machine_type, settles):
    assert policy.settled_without_image(specs, machine_type) is settles
    if not settles:
        # the image's os_vtpm turns the vTPM on
        assert policy.build_request(
            {'os_vtpm': 'required', 'hw_machine_type': machine_type},
            specs).enabled


# --- the one UUID rule: secret_uuid ------------------------------------------

# (id, value, its canonical form or None): every secret reference (an item
# of os_vtpm_keys, a re-authorization's server metadata, what the key source
# reads) is checked by it
SECRET_UUIDS = [
    ('lowercase', K1, K1),
    ('uppercase is canonicalised', K1.upper(), K1),
    ('no hyphens', K1.replace('-', ''), None),
    ('braces', '{%s}' % K1, None),
    ('URN form', 'urn:uuid:' + K1, None),
    ('a URL', 'https://barbican/v1/secrets/' + K1, None),
    ('a trailing newline', K1 + '\n', None),
    ('not a string', 42, None),
]


@pytest.mark.parametrize('value,canonical', [r[1:] for r in SECRET_UUIDS],
                         ids=[r[0] for r in SECRET_UUIDS])
def test_secret_uuid(value, canonical):
    assert policy.secret_uuid(value) == canonical


# --- nova's own vTPM vocabulary (vtpm_core.nova_tpm) -------------------------

OPTIONAL = dict(GEN2, os_vtpm='optional')
NOVA = {'hw:tpm_version': '2.0', 'hw:tpm_model': 'tpm-crb'}

# (id, image properties, flavor extra specs, keys asked or the error class
# and a fragment of its message)
NOVA_RULES = [
    # Hyper-V's vTPM: TPM 2.0, CRB; with the owner's keys: nova's 'user'
    ("2.0 and tpm-crb with keys: user, nova's default",
     dict(OPTIONAL, os_vtpm_keys=K1), NOVA, [K1]),
    ('2.0 and tpm-crb without keys: host', OPTIONAL,
     dict(NOVA, **{'hw:tpm_secret_security': 'host'}), []),
    ('user, given', dict(OPTIONAL, os_vtpm_keys=K1),
     dict(NOVA, **{'hw:tpm_secret_security': 'user'}), [K1]),
    ('the image asks, the flavor names the model',
     dict(GEN2, hw_tpm_version='2.0', os_vtpm_keys=K1),
     {'hw:tpm_model': 'tpm-crb'}, [K1]),
    ('all on the image', dict(GEN2, hw_tpm_version='2.0',
                              hw_tpm_model='tpm-crb', os_vtpm_keys=K1),
     {}, [K1]),
    ('both sides, agreeing', dict(OPTIONAL, hw_tpm_version='2.0',
                                  hw_tpm_model='tpm-crb'),
     dict(NOVA, **{'hw:tpm_secret_security': 'host'}), []),
    ('model with our vTPM on', dict(GEN2, os_vtpm='required'),
     {'hw:tpm_model': 'tpm-crb'}, []),
    ('secret security with our vocabulary', dict(GEN2, os_vtpm='required'),
     {'hw:tpm_secret_security': 'host'}, []),
    ('secret security with the vTPM off: nova reads none', GEN2,
     {'hw:tpm_secret_security': 'user'}, None),
    # what Hyper-V's vTPM is not
    ('TPM 1.2', OPTIONAL, dict(NOVA, **{'hw:tpm_version': '1.2'}),
     (exception.TPMNotOffered, "hw:tpm_version (flavor extra spec) is "
      "'1.2' but Hyper-V's virtual TPM is a TPM 2.0 and offers no TPM 1.2; "
      'allowed: 2.0')),
    ('TPM 1.2 on the image', dict(OPTIONAL, hw_tpm_version='1.2'), {},
     (exception.TPMNotOffered, "hw_tpm_version (image property) is '1.2'")),
    ('TIS', OPTIONAL, dict(NOVA, **{'hw:tpm_model': 'tpm-tis'}),
     (exception.TPMNotOffered, "hw:tpm_model (flavor extra spec) is "
      "'tpm-tis' but Hyper-V's virtual TPM has a CRB interface, not TIS; "
      'allowed: tpm-crb')),
    ('no model: nova assumes TIS', dict(OPTIONAL, os_vtpm_keys=K1),
     {'hw:tpm_version': '2.0'},
     (exception.TPMModelMissing, 'which nova reads as tpm-tis')),
    ('deployment', OPTIONAL,
     dict(NOVA, **{'hw:tpm_secret_security': 'deployment'}),
     (exception.TPMNotOffered, "is 'deployment' but no vTPM here is sealed "
      "for nova's service user")),
    ('not a version', OPTIONAL, dict(NOVA, **{'hw:tpm_version': '2'}),
     (exception.InvalidPropertyValue, "hw:tpm_version (flavor extra spec) "
      "is '2'; allowed: 2.0")),
    ('not a secret security', OPTIONAL,
     dict(NOVA, **{'hw:tpm_secret_security': 'User'}),
     (exception.InvalidPropertyValue, 'allowed: user, host')),
    # never a server silently without a TPM
    ('model alone', GEN2, {'hw:tpm_model': 'tpm-crb'},
     (exception.TPMPropertyWithoutVTPM, "hw:tpm_model (flavor extra spec) "
      "is 'tpm-crb' but the vTPM is off")),
    ('model alone on the image', dict(GEN2, hw_tpm_model='tpm-crb'), {},
     (exception.TPMPropertyWithoutVTPM, 'so the server would have none')),
    # the keys say who opens the vTPM's state
    ("user, nova's default, without keys", OPTIONAL, NOVA,
     (exception.SecretSecurityNotPossible, "hw:tpm_secret_security (flavor "
      "extra spec) is absent (nova's default: user) but os_vtpm_keys (image "
      "property) is absent")),
    ('host with keys', dict(OPTIONAL, os_vtpm_keys=K1),
     dict(NOVA, **{'hw:tpm_secret_security': 'host'}),
     (exception.SecretSecurityNotPossible, "hw:tpm_secret_security (flavor "
      "extra spec) is 'host' but os_vtpm_keys (image property) names 1 "
      'key(s)')),
    # the two vocabularies on one side disagree
    ('version and disabled on the flavor', OPTIONAL,
     dict(NOVA, **{'os:vtpm': 'disabled'}),
     (exception.TPMPropertyConflict, "hw:tpm_version (flavor extra spec) is "
      "'2.0' but os:vtpm (flavor extra spec) is 'disabled'")),
    ('version on the flavor, image silent', GEN2, NOVA,
     (exception.TPMPropertyConflict, "hw:tpm_version (flavor extra spec) is "
      "'2.0' but os_vtpm (image property) is absent: the flavor requires a "
      'vTPM but the image does not declare support')),
    ('a version needs a Generation 2 VM', {'os_vtpm': 'optional'}, NOVA,
     (exception.MachineTypeNotSupported, 'hw_machine_type (image property) '
      'is absent')),
]


@pytest.mark.parametrize('image,specs,expected',
                         [r[1:] for r in NOVA_RULES],
                         ids=[r[0] for r in NOVA_RULES])
def test_nova_vocabulary(image, specs, expected):
    if expected is None or isinstance(expected, list):
        request = policy.build_request(image, specs)
        assert request.enabled is (expected is not None)
        assert request.key_refs == (expected or [])
        return
    error, fragment = expected
    with pytest.raises(error) as e:
        policy.build_request(image, specs)
    assert fragment in str(e.value)


def test_nova_vocabulary_explains_itself():
    request = policy.build_request(dict(OPTIONAL, os_vtpm_keys=K1), NOVA)
    assert request.reasons == [
        'vTPM on: os_vtpm (image property) is optional, hw:tpm_version '
        '(flavor extra spec) is 2.0',
        '1 key(s) from os_vtpm_keys (image property)',
        "nova's words: hw:tpm_version (flavor extra spec) is 2.0 and "
        "hw:tpm_model (flavor extra spec) is tpm-crb: Hyper-V's virtual TPM "
        '(TPM 2.0, CRB)',
        "secret security: user (nova's default), sealed with the owner's "
        'keys']
    # the same request as our own words make it
    ours = policy.build_request(dict(OPTIONAL, os_vtpm_keys=K1),
                                {'os:vtpm': 'required'})
    assert (request.enabled, request.key_refs, request.needs_key_protector) \
        == (ours.enabled, ours.key_refs, ours.needs_key_protector)


def test_shielded_without_the_vtpm_is_explained_by_the_vtpm():
    """Not by its keys: the keys are there, the vTPM is what is off."""
    with pytest.raises(exception.ShieldingNotPossible) as e:
        policy.build_request(dict(GEN2, os_shielded_vm='required',
                                  os_vtpm_keys=K1), {})
    assert str(e.value).startswith(
        "os_shielded_vm (image property) is 'required' but the vTPM is off")
    assert 'set os_vtpm=required on the image' in str(e.value)
