# SPDX-License-Identifier: Apache-2.0
"""The Hyper-V backend: key material from Barbican, HGS KeyProtectors, vTPM."""
