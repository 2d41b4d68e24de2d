"""Subcommands of ``python -m core``; one module per command (``add_arguments``, ``run``)."""
