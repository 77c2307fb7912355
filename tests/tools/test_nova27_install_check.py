# SPDX-License-Identifier: Apache-2.0
"""The install guide's nova 27 steps as ``tools/nova27/install_check.py``
reads them (``tox -e nova27`` runs them)."""

from tools.nova27 import install_check
from tools.simcloud import blocks


def test_the_guides_block_is_the_extras_install_then_a_clean_pip_check():
    code, _ = blocks.snippet(install_check.BLOCK)

    assert blocks.console(code) == [
        (['python3', '-m', 'pip', 'install', '-c',
          'hyperv-vtpm/tools/nova27/constraints.txt',
          './hyperv-vtpm[hyperv,compute-hyperv]', 'compute-hyperv==16.0.0'],
         []),
        (['python3', '-m', 'pip', 'check'],
         ['No broken requirements found.']),
    ]


def test_a_continued_command_is_one_and_output_belongs_to_its_command():
    code = ('$ pip install \\\n      a b\nfirst\n$ pip check\n'
            'No broken requirements found.\n')

    assert blocks.console(code) == [
        (['pip', 'install', 'a', 'b'], ['first']),
        (['pip', 'check'], ['No broken requirements found.'])]
