# SPDX-License-Identifier: Apache-2.0
"""``[hyperv_vtpm]`` options of the Hyper-V backend, and ``list_opts``.

Options are registered on the conf the backend is given, never at import.
``list_opts`` also lists ``[vtpm_key_manager]``
(``vtpm_hyperv.barbican.conf``), so ``oslo-config-generator --namespace
vtpm_hyperv`` renders both.
"""

import copy

from oslo_config import cfg

from vtpm_hyperv.barbican import conf as barbican_conf

GROUP = 'hyperv_vtpm'
_GROUP_HELP = (
    "Options of the hyperv backend on Hyper-V compute hosts: which guardian "
    "is the fabric's, the names of the guardians it imports and owns, which "
    'key material tenants may store, and where the files Windows reads by '
    'path are written. How it reads Barbican is [vtpm_key_manager]; the '
    'compute driver is [DEFAULT] compute_driver (doc/source/install.rst).')


def opt_group():
    """``[hyperv_vtpm]`` with its help; a new one each call (an OptGroup
    holds the options registered on it, with their overrides)."""
    return cfg.OptGroup(GROUP, title='Hyper-V vTPM backend',
                        help=_GROUP_HELP)


OPTS = [
    cfg.StrOpt(
        'fabric_guardian_name',
        help='Name, in this host\'s guardian store, of the guardian of the '
             'guarded fabric (the HGS guardian an operator imports with '
             '"Import-HgsGuardian -Name <name> -Path '
             'https://<hgs>/KeyProtection/service/metadata/2014-07/'
             'metadata.xml"). KeyProtectors for instances with keys name it, '
             'and this host reports the SHA-256 of its signing certificate '
             'as its fabric id. Unset: the single guardian in the store that '
             'has no private signing key and is not one this library '
             'imported; a host with none or several reports no fabric and '
             'refuses instances with keys.'),
    cfg.ListOpt(
        'previous_fabric_guardian_names',
        default=[],
        help='While HGS\'s certificates are renewed: names, in this host\'s '
             'guardian store, of the fabric\'s previous guardians, which '
             'HGS still holds beside its new primary certificates (keep the '
             'guardian imported before the renewal under its name, import '
             'the new metadata under another and make that '
             'fabric_guardian_name). This host reports their identities '
             'beside its fabric id, so instances whose KeyProtector names '
             'only a previous guardian may still move here, and accepts '
             'KeyProtectors that name one of them. Empty the list (and '
             'remove those guardians) when HGS has disabled the previous '
             'certificates.'),
    cfg.StrOpt(
        'guardian_name_prefix',
        default='openstack-vtpm-',
        help='Prefix of the names under which instance guardians are '
             'imported into the host\'s guardian store while a '
             'KeyProtector is made ("<prefix><instance uuid>-<secret '
             'uuid>"). Detach removes every guardian whose name starts with '
             '"<prefix><instance uuid>", so it must not prefix guardians '
             'imported by anything else.'),
    cfg.StrOpt(
        'local_guardian_name',
        default='UntrustedGuardian',
        help='Guardian that owns local key protectors (instances with a '
             'vTPM and no keys), the name Hyper-V Manager and '
             '"Set-VMKeyProtector -NewLocalKeyProtector" use. The local '
             'guardian owns every local key protector on this host: the '
             'first attach without keys that needs it creates it '
             '(self-signed), and it stays for the host\'s life, because '
             'removing it would make those vTPMs unreadable. An attach that '
             'created it and then fails removes it again, so a failure '
             'leaves no guardian behind.'),
    cfg.BoolOpt(
        'allow_untrusted_root',
        default=False,
        help='Accept guardians whose certificates do not chain to a root '
             'this host trusts (New-HgsGuardian\'s AllowUntrustedRoot). '
             'Guardians generated with "New-HgsGuardian '
             '-GenerateCertificates" are self-signed and need it; leave it '
             'off when tenants\' guardians are issued by a CA the hosts '
             'trust.'),
    cfg.BoolOpt(
        'allow_owner_bundles',
        default=True,
        help='Accept owner PKCS#12 bundles in os_vtpm_keys. With one, this '
             'host receives the owner guardian\'s private keys to sign the '
             'KeyProtector: the hoster is trusted (Microsoft\'s '
             '"encryption supported" VM). Shielded VMs (os_shielded_vm='
             'required) never accept one, whatever this says; set False to '
             'accept only what tenants make themselves (a raw KeyProtector '
             'or a shielding data file), for every vTPM instance.'),
    cfg.StrOpt(
        'private_dir',
        help='Directory under which the backend creates, for one call at a '
             'time, a directory private to the service for the files '
             'Windows reads by path (password-protected PFX files, guardian '
             'files, shielding data files); they are removed before the '
             'call returns. Unset: the service account\'s temporary '
             'directory. It must not be shared with other users.'),
    cfg.BoolOpt(
        'allow_expired',
        default=False,
        help='Accept guardians whose certificates are expired or not yet '
             'valid (New-HgsGuardian\'s AllowExpired).'),
]


def register_opts(conf):
    """Register ``[hyperv_vtpm]`` on ``conf`` (idempotent).

    The key source registers ``[vtpm_key_manager]`` when it is built
    (``vtpm_hyperv.barbican.conf``).
    """
    conf.register_group(opt_group())
    conf.register_opts(OPTS, group=GROUP)


def list_opts():
    """For oslo-config-generator (entry point ``oslo.config.opts``; deep
    copies)."""
    return ([(opt_group(), copy.deepcopy(OPTS))]
            + barbican_conf.list_opts())
