"""Plain-library subcommands of ``kgi`` (see ``kgi.cli``)."""
