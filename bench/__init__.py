"""Benchmarks of the KGI platform, one module per figure of ``BENCHMARKS.md``; run them with ``kgi bench NAME``.

Every figure is measured beside its baseline in the same run (these machines are shared and noisy), and every
run writes ``bench/results/NAME.json`` (the machine, its load average, the versions, the settings, the figures)
and ``NAME.png``, and prints a Markdown table. ``--tiny`` is a seconds-long smoke run, what CI checks.

    serving_overhead   one request at a time: HTTP DAG vs. the same pipeline in-process; the price of a hand-off
    throughput         closed-loop load at several concurrencies: DAG vs. a single-process server
    batching           the Inpaint deployment's throughput per max_batch_size, and the batches formed
    sampler            UNet evaluations and seconds per image vs. inpainting quality (KGI's 410 as reference)
    training           Ray Train samples/s and data-wait fraction, local vs. S3 shards, 1 vs. 2 workers
    gpu                images/s, peak memory and matrix-rate fraction on a GPU (exits 0 where there is none)
"""
