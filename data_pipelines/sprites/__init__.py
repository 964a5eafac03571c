"""Sprites (LPC characters) TFDS builder."""
