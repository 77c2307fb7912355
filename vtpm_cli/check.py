# SPDX-License-Identifier: Apache-2.0
"""vtpm-check: what would a boot with these image properties and flavor do?

    vtpm-check --image-property os_vtpm=optional --extra-spec os:vtpm=required

Prints the decision (vTPM on or off, keys, shielding) and why, or the error
that nova would give. Nothing is contacted: it applies the same rules as the
scheduler and the compute side. ``vtpm-check --audit`` reads a cloud instead
(``vtpm_cli.cloud``, the ``audit`` extra). ``EXIT_STATUS`` lists the exit
codes (``--help`` prints it).

The decision and the audit report go to standard output; every message for
the person at the terminal goes to standard error: errors, and warnings
about what would not be read as given (``vtpm_cli.lint``; an audit option
without ``--audit``). ``--strict`` makes each warning an error.
"""

import argparse
import contextlib
import functools
import sys
import warnings

VALID = 0
INVALID = 2  # also argparse's code for bad arguments
MISSING_EXTRA = 3

CHECK_EXIT_STATUS = """exit status:
  0  the request is valid
  2  the request or the arguments are invalid (with --strict, also a
     warning)"""
AUDIT_EXIT_STATUS = """exit status:
  0  the audit found nothing wrong
  1  the audit found problems (with --strict, also a warning)
  2  the cloud, or a cell's database, is unreadable; or the arguments
     are invalid
  3  no openstacksdk (pip install 'hyperv-vtpm[audit]'), or
     --nova-config without nova"""
EXIT_STATUS = """exit status:
  0  the request is valid; or the audit found nothing wrong
  1  the audit found problems (with --strict, also a warning)
  2  the request or the arguments are invalid (with --strict, also a
     warning), or the cloud is unreadable
  3  --audit without openstacksdk (pip install 'hyperv-vtpm[audit]'), or
     --nova-config without nova"""
# Options that only an audit reads, with their defaults there.
AUDIT_ONLY = {'format': 'human', 'os_cloud': None, 'nova_config': None}


def _key_value(text):
    key, sep, value = text.partition('=')
    if not sep or not key:
        raise argparse.ArgumentTypeError('expected KEY=VALUE, got %r' % text)
    return key, value


def add_request_arguments(parser):
    """The arguments of a check: what ``vtpm-check`` and ``openstack vtpm
    check`` both take."""
    parser.add_argument('--image-property', '-i', metavar='KEY=VALUE',
                        type=_key_value, action='append', default=[],
                        help='an image property, as in '
                             "'openstack image set --property'")
    parser.add_argument('--extra-spec', '-e', metavar='KEY=VALUE',
                        type=_key_value, action='append', default=[],
                        help='a flavor extra spec, as in '
                             "'openstack flavor set --property'")


def add_strict_argument(parser, status='2; with --audit, 1'):
    parser.add_argument('--strict', action='store_true',
                        help='make every warning an error (exit status %s)'
                        % status)


def add_audit_arguments(group):
    """The options of an audit but the cloud's (``openstack`` reads that
    itself)."""
    group.add_argument('--nova-config', metavar='FILE', action='append',
                       help='also read nova\'s databases with this '
                            'nova.conf (repeatable, as nova-status takes '
                            'it): every instance whose KeyProtector names '
                            'no host\'s primary fabric is a finding, and so '
                            'is every image and flavor pair no host serves')
    group.add_argument('--format', choices=('human', 'json'),
                       help='human-readable text (default) or JSON')


def parse_args(argv):
    parser = argparse.ArgumentParser(
        prog='vtpm-check',
        description='Check how hyperv-vtpm merges image properties and '
                    'flavor extra specs into a vTPM request.',
        epilog=EXIT_STATUS,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    add_request_arguments(parser)
    audit = parser.add_argument_group(
        'audit a cloud', 'List every image and flavor that carries vTPM '
        'properties and report what would fail, using openstacksdk with the '
        'OS_* environment or clouds.yaml (needs the audit extra). Exits 1 '
        'when anything is wrong.')
    audit.add_argument('--audit', action='store_true',
                       help='audit the cloud instead of checking a request')
    audit.add_argument('--os-cloud', metavar='NAME',
                       help='a cloud of clouds.yaml (default: OS_CLOUD or '
                            'the OS_* variables)')
    add_audit_arguments(audit)
    add_strict_argument(parser)
    args = parser.parse_args(argv)
    if args.audit and (args.image_property or args.extra_spec):
        parser.error('--audit reads the cloud; it takes no --image-property '
                     'or --extra-spec')
    # None tells an option not given from one given with its default
    args.ignored = [] if args.audit else [
        '--' + name.replace('_', '-') for name in AUDIT_ONLY
        if getattr(args, name) is not None]
    for name, default in AUDIT_ONLY.items():
        if getattr(args, name) is None:
            setattr(args, name, default)
    return args


def describe(request):
    """Return the lines that explain a request to an operator."""
    from vtpm_core import capabilities
    lines = ['vTPM: %s' % ('on' if request.enabled else 'off')]
    if request.enabled:
        lines.append('machine type: %s' % request.machine_type)
        lines.append('keys: %s' % (', '.join(request.key_refs) or
                                   'none (a new, empty vTPM; the host makes '
                                   'its key protector, and the hoster is '
                                   'trusted with it)'))
        lines.append('shielded: %s' % ('yes' if request.shielded else 'no'))
        lines.append('host needs: %s' % capabilities.requirements(request))
    lines.extend('why: %s' % reason for reason in request.reasons)
    return lines


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    with quiet_dependencies():
        return audit(args) if args.audit else check(args)


@contextlib.contextmanager
def quiet_dependencies():
    """Run the command without the warnings of the libraries it imports.

    oslo.versionedobjects imports oslo.messaging, which imports eventlet
    (through oslo.service), which warns, as do their own dependencies (an
    ``[audit]`` install's dnspython warns four times per DSA class of
    cryptography's); nothing here uses them, and the person at the
    terminal can act on none of it. A warning of our own modules is shown.
    """
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        warnings.filterwarnings('default', module=r'vtpm_')
        yield


def check(args):
    """Check the request of ``args`` (``add_request_arguments``'s, with
    ``strict`` and ``ignored``); print it; return the exit status."""
    from vtpm_cli import lint
    from vtpm_core import exception
    from vtpm_core import policy
    found = lint.warnings(args.image_property, args.extra_spec) + [
        '%s applies to --audit only; it is ignored' % option
        for option in args.ignored]
    for message in found:
        print('%s: %s' % ('error' if args.strict else 'warning', message),
              file=sys.stderr)
    if found and args.strict:
        return INVALID
    try:
        request = policy.build_request(dict(args.image_property),
                                       dict(args.extra_spec))
    except exception.VTPMError as e:
        print('error: %s' % e, file=sys.stderr)
        return INVALID
    print('\n'.join(describe(request)))
    return VALID


def audit(args, conn=None):
    """Audit a cloud (``args``: ``add_audit_arguments``'s, with ``strict``
    and ``os_cloud``); print the report; return the exit status.

    :param conn: an openstacksdk connection to use, such as the
        ``openstack`` command's; None connects to ``args.os_cloud``.
    """
    try:
        from vtpm_cli import cloud
    except ImportError as e:
        print("error: vtpm-check --audit needs openstacksdk (%s); install "
              "the audit extra: pip install 'hyperv-vtpm[audit]'" % e,
              file=sys.stderr)
        return MISSING_EXTRA
    fleet = None
    if args.nova_config:
        try:
            from vtpm_cli import novadb
        except ImportError as e:
            print('error: vtpm-check --audit --nova-config needs nova (%s); '
                  "run it on a controller with 'hyperv-vtpm[filters]'" % e,
                  file=sys.stderr)
            return MISSING_EXTRA
        fleet = functools.partial(novadb.read, args.nova_config)
    from vtpm_core import exception
    try:
        report, status = cloud.run(args.os_cloud, args.format or 'human',
                                   fleet, strict=args.strict, conn=conn)
    except exception.VTPMError as e:  # the cloud or nova's DB unreadable
        print('error: %s' % e, file=sys.stderr)
        return cloud.UNREADABLE
    print(report)
    return status


if __name__ == '__main__':
    sys.exit(main())
