# SPDX-License-Identifier: Apache-2.0
"""The merge table (image os_vtpm by flavor os:vtpm), as data.

``tests/data/merge_table.csv`` is the single source: the table tests read it
and the user guide renders it, so the two cannot disagree.
"""

import csv
import pathlib

PATH = pathlib.Path(__file__).parent / 'data' / 'merge_table.csv'
ABSENT = 'absent'


def rows():
    """Yield (image os_vtpm or None, flavor os:vtpm or None, outcome)."""
    with PATH.open(newline='') as f:
        for image, flavor, outcome in list(csv.reader(f))[1:]:
            yield (None if image == ABSENT else image,
                   None if flavor == ABSENT else flavor, outcome)
