# SPDX-License-Identifier: Apache-2.0
"""The install guide's nova.conf, as the in-process cloud is configured.

``doc/source/install.rst`` names each of its configuration blocks
(``.. code-block:: ini`` with ``:name:``); ``options(name)`` reads one with
oslo.config's own parser and ``apply`` sets what it reads on nova's
``CONF``, so the scheduler, the API and the simulated computes of the tests
and the demo run with what the guide tells an operator to write. A value
the guide leaves to the operator (a password, Keystone's URL) is replaced
only where the caller says which option it is and what stands in the
guide; a guide that no longer has that line fails the replacement.
"""

from __future__ import annotations

import dataclasses

from oslo_config import iniparser

from tools.simcloud import blocks

GUIDE = blocks.GUIDE
GuideError = blocks.GuideError
snippet = blocks.snippet

SCHEDULER = 'nova-scheduler-conf'
COMPUTE = 'nova-compute-conf'
COMPUTE_DRIVER_MODULE = 'nova-compute-driver'


@dataclasses.dataclass(frozen=True)
class Option:
    group: str
    name: str
    values: tuple[str, ...]  # every line that sets it, in order
    lines: tuple[int, ...]  # their line numbers in the guide


class _Parser(iniparser.BaseParser):
    """oslo.config's ini grammar; collects (group, key) -> Option."""

    def __init__(self, first_line):
        super().__init__()
        self.first_line = first_line
        self.group = None
        self.found = {}
        self._key_line = None

    def new_section(self, section):
        self.group = section

    def _split_key_value(self, line):
        # the assignment is reported when the next line is read
        self._key_line = self.first_line + self.lineno - 1
        return super()._split_key_value(line)

    def assignment(self, key, value):
        previous = self.found.get((self.group, key))
        self.found[(self.group, key)] = Option(
            self.group, key,
            (previous.values if previous else ()) + ('\n'.join(value),),
            (previous.lines if previous else ()) + (self._key_line,))


def options(name, guide=GUIDE) -> list[Option]:
    """Every option the guide's ini block ``name`` sets, in order."""
    code, first = snippet(name, guide)
    parser = _Parser(first)
    parser.parse(code.splitlines())
    return list(parser.found.values())


def apply(set_option, name, conf, replace=None, skip=(), guide=GUIDE):
    """Set what the guide's block ``name`` says, with ``set_option``.

    :param set_option: ``(group, name, value)``, for example through
        nova's ``TestCase.flags`` (undone when the test ends). Setting
        ``auth_type`` must register that keystoneauth plugin's options, as
        keystoneauth does when it reads a file: the block's next lines set
        them.
    :param conf: the ``ConfigOpts`` the options are looked up in (nova's).
    :param replace: ``{(group, name): (guide's value, value to use)}`` for
        the values the guide leaves to the operator.
    :param skip: ``(group, name)`` pairs not to set, each one the guide
        must have.
    :returns: the options set, as the guide has them.
    """
    replace = dict(replace or {})
    found = options(name, guide)
    known = {(o.group, o.name) for o in found}
    missing = (set(replace) | set(skip)) - known
    if missing:
        raise GuideError('%s block %s lacks %s' % (guide, name, ', '.join(
            '[%s] %s' % pair for pair in sorted(missing))))
    chosen = []
    for option in found:
        key = (option.group, option.name)
        if key in skip:
            continue
        values = list(option.values)
        if key in replace:
            documented, actual = replace[key]
            if values != [documented]:
                raise GuideError('%s line %s: [%s] %s is %r, not %r' % (
                    guide, option.lines[0], option.group, option.name,
                    values, documented))
            values = [actual]
        chosen.append((option, values))
    # every check passed: nothing is set before
    for option, values in chosen:
        group = _group(option.group)
        opt = conf._get_opt_info(option.name, group)['opt']
        value = values if getattr(opt, 'multi', False) else values[-1]
        set_option(group, option.name, value)
    return [option for option, _ in chosen]


def _group(name):
    return None if name == 'DEFAULT' else name


def compute_replacements(keystone_url, username, password):
    """For ``apply``: what the guide's compute block leaves to the operator.

    nova's service user in ``[service_user]``: the cloud's Keystone, the
    user's name and password.
    """
    return {('service_user', 'auth_url'): ('https://keystone.example.org/v3',
                                           keystone_url),
            ('service_user', 'username'): ('nova', username),
            ('service_user', 'password'): ('NOVA_SERVICE_PASSWORD', password)}


def lines_read(applied) -> str:
    """``applied`` (``apply``'s) as lines of the guide: "107-109, 115"."""
    numbers = sorted(n for option in applied for n in option.lines)
    runs = []
    for n in numbers:
        if runs and n == runs[-1][1] + 1:
            runs[-1][1] = n
        else:
            runs.append([n, n])
    return ', '.join('%d' % a if a == b else '%d-%d' % (a, b)
                     for a, b in runs)
