# SPDX-License-Identifier: Apache-2.0
"""Error messages: they quote a bounded excerpt of a value, never all of it."""

import pytest

from vtpm_core import exception
from vtpm_core import policy

HUGE = 'A' * 10 ** 6
GEN2 = {'hw_machine_type': 'hyperv-gen2'}
LONGEST = exception.EXCERPT_LENGTH + len('... (1000000 characters)')


# (id, value, its excerpt)
EXCERPTS = [
    ('a short string is its repr', 'Required', "'Required'"),
    ('None', None, 'None'),
    ('a list', ['hyperv-gen2'], "['hyperv-gen2']"),
    ('300 characters of repr: whole', 'x' * 298, repr('x' * 298)),
    ('301 characters of repr: cut, with the length', 'x' * 299,
     repr('x' * 299)[:300] + '... (299 characters)'),
    ('escapes count in the repr', '\u3000' * 100,
     repr('\u3000' * 100)[:300] + '... (100 characters)'),
    ('a huge string', HUGE, "'" + 'A' * 299 + '... (1000000 characters)'),
]


@pytest.mark.parametrize('value,expected', [r[1:] for r in EXCERPTS],
                         ids=[r[0] for r in EXCERPTS])
def test_excerpt(value, expected):
    assert exception.excerpt(value) == expected


# (whole, each repr is megabytes: enough to see, small enough to survive an
# implementation that renders it all)
@pytest.mark.parametrize('value', [
    list(range(10 ** 6)), {str(i): HUGE for i in range(10)},
    [[['A' * 1000] * 100] * 100], b'\x00' * 10 ** 6,
], ids=['long list', 'dict of huge strings', 'nested lists', 'bytes'])
def test_excerpt_of_any_value_is_bounded(value):
    assert len(exception.excerpt(value)) <= exception.EXCERPT_LENGTH + 20


# (id, image properties, flavor extra specs): a 1 MB value for each key, in
# each message that quotes a value
HUGE_INPUTS = [
    ('os_vtpm', {'os_vtpm': HUGE}, {}),
    ('os:vtpm', dict(GEN2, os_vtpm='required'), {'os:vtpm': HUGE}),
    ('os_vtpm_keys', dict(GEN2, os_vtpm='required', os_vtpm_keys=HUGE), {}),
    ('hw_machine_type', {'os_vtpm': 'required', 'hw_machine_type': HUGE}, {}),
    ('os_shielded_vm', dict(GEN2, os_shielded_vm=HUGE), {}),
    ('nested properties', {'properties': {'os_vtpm': HUGE}}, {}),
]


@pytest.mark.parametrize('image,specs', [r[1:] for r in HUGE_INPUTS],
                         ids=[r[0] for r in HUGE_INPUTS])
def test_a_huge_value_gives_a_bounded_message(image, specs):
    with pytest.raises(exception.InvalidVTPMRequest) as e:
        policy.build_request(image, specs)
    # the rest of the message is a few hundred characters at most
    assert len(str(e.value)) < LONGEST + 400
    assert "'AAAA" in str(e.value)


@pytest.mark.parametrize('error', [
    exception.InvalidPropertyValue(key='os_vtpm', source='image property',
                                   value=HUGE, allowed='disabled'),
    exception.KeysWithoutVTPM(key='os_vtpm_keys', source='image property',
                              value=HUGE, why='vTPM off'),
    exception.MachineTypeNotSupported(key='hw_machine_type',
                                      source='image property', value=HUGE,
                                      allowed='hyperv-gen2'),
    exception.ShieldingNotPossible(key='os_shielded_vm',
                                   source='image property', value=HUGE,
                                   why='the vTPM is off'),
    exception.PolicyConflict(image_value=HUGE, flavor_value=HUGE, why='no'),
    exception.BackendNotFound(name=HUGE, installed='hyperv'),
], ids=lambda e: type(e).__name__)
def test_every_message_that_quotes_a_value_quotes_an_excerpt(error):
    assert len(str(error)) < 2 * LONGEST + 200
    # the attributes keep the value whole, for callers that act on it
    assert HUGE in vars(error).values()
