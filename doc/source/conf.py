# SPDX-License-Identifier: Apache-2.0
"""Sphinx configuration for hyperv-vtpm (built with warnings as errors)."""

import os
import sys

sys.path.insert(0, os.path.abspath('../..'))
sys.path.insert(0, os.path.abspath('_ext'))
os.environ.setdefault('OS_NOVA_DISABLE_EVENTLET_PATCHING', '1')

project = 'hyperv-vtpm'
copyright = 'hyperv-vtpm developers'
extensions = [
    'sphinx.ext.autodoc',
    'oslo_config.sphinxext',
    'reno.sphinxext',
    'lifecycle_rules',
]
exclude_patterns = []
html_theme = 'alabaster'
autodoc_member_order = 'bysource'
nitpicky = False
