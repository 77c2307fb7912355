# SPDX-License-Identifier: Apache-2.0
"""Start and stop real Keystone and Barbican on loopback for the tests.

Placeholder: returns no environment until the services land.
"""


def start(state_dir):
    return {}


def stop(state_dir):
    pass
