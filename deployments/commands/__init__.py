"""``kgi`` subcommands that need Ray Serve (imported only when invoked)."""
