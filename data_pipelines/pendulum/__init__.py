"""Swinging-pendulum TFDS builder."""
