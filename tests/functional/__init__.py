# SPDX-License-Identifier: Apache-2.0
"""Functional tests inside nova's in-process services (tools.simcloud)."""
