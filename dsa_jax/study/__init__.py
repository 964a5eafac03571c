"""The study's models and oracles."""
