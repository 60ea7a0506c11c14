"""``kgi`` subcommands of the offline jobs (imported only when invoked; see ``kgi.cli``)."""
