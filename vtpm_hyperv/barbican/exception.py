# SPDX-License-Identifier: Apache-2.0
"""The HTTP guard's refusals (``vtpm_hyperv.barbican.http_guard``).

Raised beneath barbicanclient and keystoneauth, deliberately not
``requests`` exceptions, which keystoneauth would wrap as a connection
error (and retry, for some): these go straight through both to the key
source, which names the secret (``vtpm_core.exception.KeyTooLarge``,
``KeyFetchFailed``, ``KeyManagerUnavailable``). Each is a
``vtpm_core.exception.VTPMError``.
"""

from vtpm_core import exception


class Refused(exception.VTPMError):
    """A request broke one of the guard's rules."""


class DeadlineExceeded(Refused):
    msg_fmt = 'no time left of the %(timeout)s s for the whole call'


class RedirectRefused(Refused):
    """``.status``: the redirect's HTTP status."""

    msg_fmt = ('HTTP %(status)d redirect from %(source)s to %(target)s, '
               'another origin: refused, only redirects within %(source)s '
               'are followed')


class TooLarge(Refused):
    """``.limit``: the cap in bytes; ``.seen``: what showed it was passed."""

    msg_fmt = 'the answer is larger than %(limit)d bytes (%(seen)s)'
