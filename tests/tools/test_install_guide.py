# SPDX-License-Identifier: Apache-2.0
"""The install guide's pip commands and Barbican block, as they run.

The guide's ``install-with-constraints`` block, run with this
environment's Python on this checkout, as a dry run that may not fetch
anything (``--dry-run --no-index``): pip would install hyperv-vtpm alone.
With nova held at a release the ``filters`` extra does not accept (a
distribution's older nova), pip refuses instead of replacing it. The test
Barbican (``tools.services``) runs with the guide's ``barbican-conf``
block, whose limits hold the largest shielding data file Windows makes.
"""

import base64
import importlib.metadata
import json
import pathlib
import subprocess
import sys

from oslo_config import cfg

from tools.services import barbican
from tools.simcloud import blocks
from tools.simcloud import guide
from vtpm_hyperv import fake

ROOT = pathlib.Path(__file__).resolve().parents[2]
# what makes the guide's install a check: nothing changes, nothing is
# fetched, the checkout's metadata is built with what is installed
DRY_RUN = ['--dry-run', '--no-index', '--no-build-isolation']


def guide_commands():
    code, _ = guide.snippet('install-with-constraints')
    return [argv for argv, _ in blocks.console(code)]


def run(tmp_path, hold=None):
    """The guide's two commands; (exit code, pip's output)."""
    (freeze, install) = guide_commands()
    assert freeze[:5] == ['python3', '-m', 'pip', 'list', '--format=freeze']
    assert freeze[5:] == ['>', 'installed.txt']
    listed = subprocess.run([sys.executable] + freeze[1:5], check=True,
                            capture_output=True, text=True).stdout
    # a host where hyperv-vtpm is not installed yet
    lines = [line for line in listed.splitlines()
             if not line.startswith('hyperv-vtpm==')]
    if hold:
        name, version = hold
        lines = [line for line in lines if not line.startswith(name + '==')]
        lines.append('%s==%s' % (name, version))
    (tmp_path / 'installed.txt').write_text('\n'.join(lines) + '\n')
    assert install[:4] == ['python3', '-m', 'pip', 'install']
    assert install[4:6] == ['-c', 'installed.txt']
    target = install[6]
    assert target.startswith('./hyperv-vtpm[')
    done = subprocess.run(
        [sys.executable] + install[1:4] + DRY_RUN + install[4:6] +
        [str(ROOT) + target[len('./hyperv-vtpm'):]],
        cwd=tmp_path, capture_output=True, text=True, timeout=300)
    return done.returncode, done.stdout + done.stderr


def test_the_constrained_install_adds_hyperv_vtpm_and_nothing_else(
        tmp_path):
    code, output = run(tmp_path)
    assert code == 0, output
    (would,) = [line for line in output.splitlines()
                if line.startswith('Would install')]
    assert would.split()[2:] == [
        'hyperv-vtpm-' + importlib.metadata.version('hyperv-vtpm')], would


def test_a_held_nova_the_extra_refuses_stops_pip_instead(tmp_path):
    code, output = run(tmp_path, hold=('nova', '33.0.0'))
    assert code != 0
    assert 'ResolutionImpossible' in output, output
    assert 'Would install' not in output


# --- Barbican's limits -------------------------------------------------------

def test_the_test_barbican_is_configured_as_the_guides_barbican_block(
        tmp_path):
    """tools.services writes the guide's barbican.conf block into the
    Barbican the tests run, as oslo.config reads the block."""
    documented = {(o.group, o.name): o.values[-1]
                  for o in guide.options('barbican-conf')}
    assert set(documented) == {
        ('DEFAULT', 'max_allowed_secret_in_bytes'),
        ('DEFAULT', 'max_allowed_request_size_in_bytes')}
    (tmp_path / 'ports.json').write_text(json.dumps(
        {'keystone': 1, 'barbican': 2, 'glance': 3}))
    barbican.setup(tmp_path, {'barbican': 'secret'})
    conf = cfg.ConfigOpts()
    for (_, name), _ in documented.items():
        conf.register_opt(cfg.IntOpt(name))
    conf(['--config-file', str(tmp_path / 'barbican' / 'barbican.conf')])
    assert {key: str(conf[key[1]]) for key in documented} == documented


def test_the_guides_limits_hold_the_largest_shielding_data_file():
    """A shielding data file with other files up to New-ShieldingDataFile's
    384 KB, sent as python-barbicanclient sends it (base64 in JSON), fits
    the guide's limits, which are what the guide says they allow."""
    limits = {o.name: int(o.values[-1])
              for o in guide.options('barbican-conf')}
    pdk = fake.shielding_data_file(fake.make_guardian('owner'))
    assert 384 * 1024 < len(pdk) < 512 * 1024
    body = json.dumps({'name': 'win2022 shielding data', 'secret_type':
                       'opaque', 'payload_content_type':
                       'application/octet-stream',
                       'payload_content_encoding': 'base64',
                       'payload': base64.b64encode(pdk).decode()})
    assert len(base64.b64encode(pdk)) <= limits[
        'max_allowed_secret_in_bytes']
    assert len(body) <= limits['max_allowed_request_size_in_bytes']
    # the guide's arithmetic: 512 KiB in base64
    largest = len(base64.b64encode(bytes(512 * 1024)))
    assert largest == 699052
    assert largest <= limits['max_allowed_secret_in_bytes']
