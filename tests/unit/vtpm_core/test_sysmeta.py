# SPDX-License-Identifier: Apache-2.0
"""Our keys in an instance's system metadata: written one way, read one way.

The rule: ``fabrics`` reads what ``set_fabrics`` wrote, in order; it drops
whitespace around an id and empty items, so every reader (the scheduler
filter on a move, the compute side, the audit) gets the same fabrics from
the same string.
"""

import pytest

from vtpm_core import constants
from vtpm_core import sysmeta


@pytest.mark.parametrize('fabrics', [
    (),                                # a local key protector
    ('fabric-a',),
    ('fabric-a', 'fabric-dr'),         # in the KeyProtector's order
], ids=['none', 'one', 'two'])
def test_what_is_written_reads_back(fabrics):
    record = {}
    sysmeta.set_fabrics(record, fabrics)
    assert record[constants.SYSMETA_FABRICS] == ','.join(fabrics)
    assert sysmeta.fabrics(record) == fabrics


# (id, stored value, what every reader gets)
READS = [
    ('absent', None, ()),
    ('empty: a local key protector', '', ()),
    ('spaces around ids, as a hand edit leaves them', ' fabric-a , fabric-dr',
     ('fabric-a', 'fabric-dr')),
    ('empty items', 'fabric-a,,fabric-dr,', ('fabric-a', 'fabric-dr')),
    ('an id twice', 'fabric-a,fabric-a', ('fabric-a',)),
]


@pytest.mark.parametrize('stored,fabrics', [r[1:] for r in READS],
                         ids=[r[0] for r in READS])
def test_every_reader_reads_the_same_fabrics(stored, fabrics):
    record = {} if stored is None else {constants.SYSMETA_FABRICS: stored}
    assert sysmeta.fabrics(record) == fabrics


def test_the_handled_reauthorization_reads_back():
    record = {}
    assert sysmeta.handled_keyprotector(record) is None
    sysmeta.set_handled_keyprotector(
        record, '3f1b0c55-7d6a-4c8e-9b2a-5e4d3c2b1a09')
    assert record == {constants.SYSMETA_HANDLED_KEYPROTECTOR:
                      '3f1b0c55-7d6a-4c8e-9b2a-5e4d3c2b1a09'}
    assert sysmeta.handled_keyprotector(record) == \
        '3f1b0c55-7d6a-4c8e-9b2a-5e4d3c2b1a09'


def test_keys_round_trip_in_order_each_once():
    sm = {}
    a, b = ('1c9b6b8e-2b55-4c1e-9f1a-6a2f3d4e5f60',
            '2d0c7c9f-3c66-4d2f-8a2b-7b3e4f5a6b71')
    sysmeta.set_keys(sm, [b, a])
    assert sm[constants.SYSMETA_KEYS] == '%s,%s' % (b, a)
    assert sysmeta.keys(sm) == (b, a)
    edited = ' %s , ,%s,%s' % (a, b, a)
    assert sysmeta.keys({constants.SYSMETA_KEYS: edited}) == (a, b)
    assert sysmeta.keys({}) == ()
