"""Distributed training of the three KGI models: Ray Data shards in, Ray Train jobs, checkpoints out."""
