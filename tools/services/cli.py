# SPDX-License-Identifier: Apache-2.0
"""The command line: ``python3 -m tools.services {start|stop|env}``."""

import argparse
import shlex
import sys

from tools.services import common
from tools.services import stack

_EPILOG = '''\
To run single tests against services started by hand:
  python3 -m tools.services start
  eval "$(python3 -m tools.services env)"
  .venv/bin/python -m pytest tests/functional/barbican
The tests reuse services named in their environment and stop none of them.
'''


def _parser():
    parser = argparse.ArgumentParser(
        prog='python3 -m tools.services', epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description='Real Keystone, Barbican and Glance on loopback, for the '
                    'tests of hyperv-vtpm.')
    parser.add_argument(
        'command', choices=('start', 'stop', 'env'),
        help='start (or restart) the services; stop them; print export '
             'lines of their environment for a shell')
    parser.add_argument(
        'state_dir', nargs='?', default=str(stack.STATE_DIR),
        metavar='STATE_DIR',
        help='where their configuration, data and logs live (default: '
             '%(default)s)')
    return parser


def main(argv=None):
    args = _parser().parse_args(argv)
    if args.command == 'stop':
        stack.stop(args.state_dir)
    elif args.command == 'env':
        env = stack.environment(args.state_dir)
        if env is None:
            sys.exit('tools.services: no environment in %s: start first'
                     % args.state_dir)
        for name, value in sorted(env.items()):
            print('export %s=%s' % (name, shlex.quote(value)))
    else:
        try:
            stack.start(args.state_dir)
        except common.ServiceError as e:
            sys.exit('tools.services: %s' % e)
        print('environment for the tests: python3 -m tools.services env %s'
              % shlex.quote(args.state_dir))
    return 0
