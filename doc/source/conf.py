# SPDX-License-Identifier: Apache-2.0
"""Sphinx configuration for hyperv-vtpm (built with warnings as errors)."""

import os
import sys

sys.path.insert(0, os.path.abspath('../..'))
sys.path.insert(0, os.path.abspath('_ext'))
os.environ.setdefault('OS_NOVA_DISABLE_EVENTLET_PATCHING', '1')

project = 'hyperv-vtpm'
# version and release: setup.cfg's (the release_version extension)
copyright = 'hyperv-vtpm developers'
extensions = [
    'sphinx.ext.autodoc',
    'oslo_config.sphinxext',
    'lifecycle_rules',
    'reno.sphinxext',
    'release_version',
]
exclude_patterns = []
html_theme = 'alabaster'
# custom.css: long code lines wrap instead of running off the page
html_static_path = ['_static']
autodoc_member_order = 'bysource'
nitpicky = False
