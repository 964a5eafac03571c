"""Flax Linen modules of DSA and VDSM and their layers."""
