# SPDX-License-Identifier: Apache-2.0
"""The key source's own errors: the HTTP guard's refusals, and what
becomes of a secret consumer registration. Each is a
``vtpm_core.exception.VTPMError``.

The guard's refusals (``vtpm_hyperv.barbican.http_guard``) are raised
beneath barbicanclient and keystoneauth, deliberately not ``requests``
exceptions, which keystoneauth would wrap as a connection error (and retry,
for some): these go straight through both to the key source, which names
the secret (``vtpm_core.exception.KeyTooLarge``, ``KeyFetchFailed``,
``KeyManagerUnavailable``).

The consumer errors (``BarbicanKeySource.register_consumer`` and
``remove_consumer``) subclass the core class whose handling they need, so
the compute side tells them apart as it tells a read's failures apart: a
refusal aborts a build (``KeyAccessDenied``), an unreachable Barbican lets
nova reschedule it (``KeyManagerUnavailable``).
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


# --- secret consumers --------------------------------------------------------

# how every consumer error names the consumer
_CONSUMER = ('instance %(instance)s as a consumer (service nova, resource '
             'type instance) of Barbican secret %(ref)s')


class ConsumersUnsupported(exception.VTPMError):
    """This Barbican cannot refuse to delete a secret in use."""

    msg_fmt = ('Barbican at %(endpoint)s speaks key-manager API microversion '
               '%(version)s; registering ' + _CONSUMER + ' needs '
               'microversion %(needed)s or newer (from it on Barbican refuses '
               'to delete a secret that has consumers)')


class ConsumerRefused(exception.KeyAccessDenied):
    """Barbican refused the registration or its removal (HTTP 401 or 403).

    Its policy lets only a member of the secret's project who may read it,
    an admin of that project, or a user the secret is shared with (ACL
    read) register or remove a consumer: not another project, not a plain
    service user.
    """

    msg_fmt = ('Barbican refused to %(action)s ' + _CONSUMER + ' (HTTP '
               "%(status)s): only the secret owner's project (a member who "
               'may read it, or its admin) or a user the secret is shared '
               "with may; the request carried %(credentials)s")


class ConsumerFailed(exception.KeyManagerUnavailable):
    """Barbican did not answer the registration or its removal with a
    success or a refusal: unreachable, 5xx, out of time, or another 4xx."""

    msg_fmt = 'Barbican did not %(action)s ' + _CONSUMER + ': %(reason)s'
