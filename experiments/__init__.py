"""Config files and command-line entry points (run from the repository root)."""
