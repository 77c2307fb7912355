# SPDX-License-Identifier: Apache-2.0
"""The errors of the console scripts: a service they read did not answer.

Each is a ``vtpm_core.exception.VTPMError``; ``vtpm-check`` prints the
message and exits 2 (``vtpm_cli.check``).
"""

from vtpm_core import exception


class CloudUnreadable(exception.VTPMError):
    """The cloud's images and flavors could not be read: no report."""

    msg_fmt = ('could not read images and flavors from the cloud %(cloud)s: '
               '%(reason)s')


class NovaUnreadable(exception.VTPMError):
    """A cell's database could not be read: no report."""

    msg_fmt = 'could not read nova\'s database of cell %(cell)s: %(reason)s'
