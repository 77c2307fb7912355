# SPDX-License-Identifier: Apache-2.0
"""``[vtpm_key_manager]`` options of the key source, and ``list_opts``.

The key source's own options, keystoneauth's adapter and session options
(with our defaults) and its auth options (service credentials). Registered
on the conf the key source is given, never at import; ``list_opts`` is part
of ``vtpm_hyperv.conf.list_opts`` (``oslo-config-generator --namespace
vtpm_hyperv``).
"""

import copy

from keystoneauth1 import loading as ks_loading
from oslo_config import cfg

GROUP = 'vtpm_key_manager'
SERVICE_TYPE = 'key-manager'
# 5xx only: a 429 or any other 4xx is Barbican's answer, not a hiccup
RETRIABLE_STATUS_CODES = [500, 502, 503, 504]

OPTS = [
    cfg.IntOpt('max_concurrency', default=6, min=1,
               help='How many secrets of one instance are read from Barbican '
                    'at the same time. The default, 6, is the most keys '
                    'os_vtpm_keys can name, so an instance waits for one '
                    'round trip, not six.'),
    cfg.IntOpt('fetch_timeout', default=30, min=1,
               help='Seconds for reading all the secrets of one instance, '
                    'Keystone and retries included; then the build fails '
                    'with KeyManagerUnavailable. timeout bounds each wait '
                    'for data, this bounds the whole call, so a Barbican '
                    'that answers a byte at a time cannot hold a build. The '
                    'default, 30, leaves room for a slow token request and '
                    'a retried read, where a healthy Barbican answers in '
                    'milliseconds.'),
    cfg.IntOpt('max_payload_bytes', default=1024 * 1024, min=1,
               help='The largest answer accepted from Barbican, in bytes; a '
                    'larger secret is refused (KeyTooLarge) before it is '
                    'read in full. The default, 1 MiB, is a few times the '
                    'largest key material an image can name: a shielding '
                    'data file (a KeyProtector, volume ID qualifiers, an '
                    'unattend file and other files, which Windows limits '
                    'to 384 KB) holds about 400 KB at most, a KeyProtector '
                    'or guardian bundle a few KB; Barbican itself refuses '
                    'secrets over 20,000 bytes until its limits are raised '
                    'as the install guide says. It also bounds what one '
                    'build holds in memory to max_concurrency times this.'),
]


def _adapter_opts():
    opts = ks_loading.get_adapter_conf_options(include_deprecated=False)
    if not any(o.dest == 'retriable_status_codes' for o in opts):
        # an older keystoneauth (2023.1's 5.1.3) has the adapter's argument
        # but not its option: newer keystoneauth's, so the group reads alike
        opts.append(cfg.ListOpt(
            'retriable-status-codes', item_type=cfg.types.Integer(),
            help='List of retriable HTTP status codes that should be '
                 'retried. If not set default to `[503]`'))
    cfg.set_defaults(opts, service_type=SERVICE_TYPE,
                     valid_interfaces=['internal', 'public'],
                     connect_retries=2, status_code_retries=2,
                     retriable_status_codes=RETRIABLE_STATUS_CODES)
    return opts


def _session_opts():
    opts = ks_loading.get_session_conf_options()
    # keystoneauth's default is no timeout at all: a hung Barbican would
    # hang the instance build with it
    cfg.set_defaults(opts, timeout=10)
    return opts


# What the sample config and the configuration reference print above the
# group's options.
_GROUP_HELP = (
    'How the Hyper-V vTPM backend reads the Barbican secrets named by the '
    "os_vtpm_keys image property. Secrets are read with the instance owner's "
    "credentials, which the compute driver passes, together with nova's "
    'service token when [service_user] send_service_user_token is set. '
    'Barbican is found in the service catalog (service_type, '
    'valid_interfaces, region_name) unless endpoint_override is set; the '
    'session options (cafile, timeout, ...) apply to every request of a read. '
    'The auth options (auth_type and after) are service credentials, used '
    'only when a caller passes no owner credentials: leave them unset on a '
    "compute host. nova's [key_manager] and [barbican] configure castellan, "
    'which nova uses for its own secrets; this backend reads neither.')


def opt_group():
    """``[vtpm_key_manager]`` with its help; a new one each call (an
    OptGroup holds the options registered on it, with their overrides)."""
    return cfg.OptGroup(GROUP, title='Barbican access for vTPM key material',
                        help=_GROUP_HELP)


def register_opts(conf):
    """Register ``[vtpm_key_manager]`` on ``conf`` (safe to call twice)."""
    conf.register_group(opt_group())
    conf.register_opts(OPTS + _adapter_opts() + _session_opts(),
                       group=GROUP)
    ks_loading.register_auth_conf_options(conf, GROUP)


def list_opts():
    """Options for oslo-config-generator (deep copies: callers may mutate)."""
    opts = (OPTS + _adapter_opts() + _session_opts()
            + ks_loading.get_auth_common_conf_options()
            + ks_loading.get_auth_plugin_conf_options('password'))
    return [(opt_group(), copy.deepcopy(opts))]
