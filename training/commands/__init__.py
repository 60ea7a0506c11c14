"""``kgi`` subcommands that need Ray for training (see ``kgi.cli``)."""
