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


def _sides(image_value, flavor_value):
    image = dict(GEN2)
    if image_value is not None:
        image['os_vtpm'] = image_value
    flavor = {} if flavor_value is None else {'os:vtpm': flavor_value}
    return image, flavor


@pytest.mark.parametrize(
    'image_value,flavor_value,outcome', list(merge_table.rows()),
    ids=['image-%s/flavor-%s->%s' % (i or 'absent', f or 'absent', o)
         for i, f, o in merge_table.rows()])
def test_merge_table(image_value, flavor_value, outcome):
    image, flavor = _sides(image_value, flavor_value)
    if outcome == 'conflict':
        with pytest.raises(exception.PolicyConflict) as e:
            policy.build_request(image, flavor)
        # A conflict names both sides, with their values.
        assert ("os:vtpm (flavor extra spec) is %r" % flavor_value
                in str(e.value))
        # an absent key is named as the "why" of a request names it
        assert "os_vtpm (image property) is %s:" % (
            repr(image_value) if image_value else 'absent') in str(e.value)
        return
    request = policy.build_request(image, flavor)
    assert isinstance(request, objects.VTPMRequest)
    assert request.enabled is (outcome == 'on')
    assert request.image_policy == (image_value or 'disabled')
    assert request.flavor_policy == flavor_value


def test_table_covers_every_cell():
    cells = {(i, f) for i, f, _ in merge_table.rows()}
    values = (None, 'disabled', 'optional', 'required')
    assert cells == {(i, f) for i in values for f in values}


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
    assert ('allowed: 1 to 6 Barbican secret UUIDs separated by commas and '
            'ASCII whitespace, at most 251 characters in all') in message
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
    image = dict(REQUIRED, os_distro='windows', hw_tpm_version='1.2',
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
