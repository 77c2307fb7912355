# SPDX-License-Identifier: Apache-2.0
"""The install guide's named code blocks, read with the standard library.

``doc/source/install.rst`` names each block an operator copies
(``.. code-block:: ini`` with ``:name:``); ``snippet(name)`` returns one,
and ``console(code)`` a console block's commands and their output.
``tools.simcloud.guide`` reads nova.conf blocks from it with oslo.config's
parser; ``tools.services`` (standard library only) reads Barbican's.
"""

from __future__ import annotations

import pathlib
import shlex
import textwrap

GUIDE = pathlib.Path(__file__).resolve().parents[2] / 'doc' / 'source' / \
    'install.rst'

_DIRECTIVE = '.. code-block::'


class GuideError(Exception):
    """The guide lacks a block, a line, or holds one that cannot apply."""


def snippet(name, guide=GUIDE) -> tuple[str, int]:
    """The code of the block named ``name`` and the line it starts on."""
    lines = pathlib.Path(guide).read_text().splitlines()
    for number, line in enumerate(lines):
        if not line.startswith(_DIRECTIVE):
            continue
        options, body = _directive(lines, number + 1)
        if options.get('name') == name:
            start = body[0] if body else number + 1
            code = textwrap.dedent('\n'.join(
                lines[start:body[-1] + 1] if body else []))
            return code, start + 1
    raise GuideError('%s has no code block named %s' % (guide, name))


def console(code) -> list[tuple[list[str], list[str]]]:
    """``[(argv, expected output lines)]`` of a console block: ``$ ``
    starts a command, a trailing backslash continues it, any other line is
    what the command before it prints."""
    found, pending = [], None
    for line in code.splitlines():
        if pending is not None:
            pending += ' ' + line.strip()
        elif line.startswith('$ '):
            pending = line[2:].strip()
        else:
            found[-1][1].append(line.strip())
            continue
        if pending.endswith('\\'):
            pending = pending[:-1].rstrip()
        else:
            found.append((shlex.split(pending), []))
            pending = None
    return found


def _directive(lines, first):
    """(options, [line index of each body line]) of a directive."""
    options, index = {}, first
    while index < len(lines) and lines[index].strip().startswith(':'):
        key, _, value = lines[index].strip()[1:].partition(':')
        options[key] = value.strip()
        index += 1
    body = []
    for index in range(index, len(lines)):
        line = lines[index]
        if line and not line.startswith(' '):
            break
        if line.strip() or body:
            body.append(index)
    while body and not lines[body[-1]].strip():
        body.pop()
    return options, body
