"""Subcommands of ``defocus``: one module each (see :mod:`defocus_forensics.cli`)."""
