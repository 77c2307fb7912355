# SPDX-License-Identifier: Apache-2.0
"""The nova side: the scheduler host filter and the nova-api validator."""
