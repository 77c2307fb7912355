# SPDX-License-Identifier: Apache-2.0
"""The merge table (image os_vtpm by flavor os:vtpm, and nova's TPM version
on either side), as data.

``tests/data/merge_table.csv`` is the single source: the table tests read it
and the user guide renders it, so the two cannot disagree.
"""

import collections
import csv
import pathlib

PATH = pathlib.Path(__file__).parent / 'data' / 'merge_table.csv'
ABSENT = 'absent'
# the third column: where nova's hw_tpm_version / hw:tpm_version is set
NOVA_SIDES = {ABSENT: None, '2.0 (image)': 'image', '2.0 (flavor)': 'flavor'}

Row = collections.namedtuple('Row', ('image', 'flavor', 'nova', 'outcome'))


def rows():
    """Yield a Row per line: image os_vtpm, flavor os:vtpm (None when
    absent), the side of nova's TPM version (None, 'image' or 'flavor') and
    the outcome ('on', 'off' or 'conflict')."""
    with PATH.open(newline='') as f:
        for image, flavor, nova, outcome in list(csv.reader(f))[1:]:
            yield Row(None if image == ABSENT else image,
                      None if flavor == ABSENT else flavor,
                      NOVA_SIDES[nova], outcome)


def request(row, machine_type='hyperv-gen2'):
    """(image properties, flavor extra specs) of a row.

    A row with nova's version also carries what makes the rest of nova's
    request one Hyper-V can give: the model (tpm-crb) and, as the request
    has no keys, the 'host' secret security.
    """
    image = {'hw_machine_type': machine_type}
    flavor = {}
    if row.image is not None:
        image['os_vtpm'] = row.image
    if row.flavor is not None:
        flavor['os:vtpm'] = row.flavor
    if row.nova == 'image':
        image['hw_tpm_version'] = '2.0'
    elif row.nova == 'flavor':
        flavor['hw:tpm_version'] = '2.0'
    if row.nova is not None:
        flavor['hw:tpm_model'] = 'tpm-crb'
        flavor['hw:tpm_secret_security'] = 'host'
    return image, flavor


def row_id(row):
    return 'image-%s/flavor-%s%s->%s' % (
        row.image or ABSENT, row.flavor or ABSENT,
        '/nova-%s' % row.nova if row.nova else '', row.outcome)
