# SPDX-License-Identifier: Apache-2.0
"""``openstack vtpm check`` and ``openstack vtpm audit``: an OpenStackClient
plugin (osc-lib), for the ``osc`` extra.

python-openstackclient finds this module through the
``openstack.cli.extension`` entry point and its commands through
``openstack.vtpm.v1``. The commands are ``vtpm-check``'s (``vtpm_cli.check``,
which stays as the command of a host without the ``openstack`` client):
the same arguments, output and exit status; ``audit`` reads the cloud the
``openstack`` command was given (``--os-cloud``, clouds.yaml, ``OS_*``), as
every ``openstack`` command does. The module is imported whenever the
``openstack`` command starts, so it imports no more than osc-lib.
"""

import argparse

from osc_lib.command import command

from vtpm_cli import check

# What python-openstackclient asks of a plugin module: its API's name, the
# global option that selects the version, and a client to make. Nothing
# here talks to a vTPM service: check contacts nothing, and audit uses the
# command's own openstacksdk connection.
API_NAME = 'vtpm'
API_VERSION_OPTION = 'os_vtpm_api_version'
API_VERSIONS = {'1': None}
DEFAULT_API_VERSION = '1'


def make_client(instance):
    """No client: the commands read what they need themselves."""
    return None


def build_option_parser(parser):
    """The ``--os-vtpm-api-version`` option every plugin has."""
    parser.add_argument('--os-vtpm-api-version', metavar='<version>',
                        default=DEFAULT_API_VERSION,
                        help='hyperv-vtpm command version (1)')
    return parser


class CheckRequest(command.Command):
    """Check how hyperv-vtpm merges image properties and flavor extra specs
    into a vTPM request, contacting nothing (as vtpm-check)."""

    auth_required = False

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.formatter_class = argparse.RawDescriptionHelpFormatter
        parser.epilog = check.CHECK_EXIT_STATUS
        check.add_request_arguments(parser)
        check.add_strict_argument(parser, '2')
        return parser

    def take_action(self, parsed_args):
        parsed_args.ignored = []
        with check.quiet_dependencies():
            return check.check(parsed_args)


class AuditCloud(command.Command):
    """List the cloud's images and flavors that carry vTPM properties and
    report what would fail (as vtpm-check --audit); exit status 1 when
    anything is wrong."""

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.formatter_class = argparse.RawDescriptionHelpFormatter
        parser.epilog = check.AUDIT_EXIT_STATUS
        check.add_audit_arguments(parser)
        check.add_strict_argument(parser, '1')
        return parser

    def take_action(self, parsed_args):
        parsed_args.os_cloud = None
        with check.quiet_dependencies():
            return check.audit(
                parsed_args, conn=self.app.client_manager.sdk_connection)
