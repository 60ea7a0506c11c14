"""Offline jobs that run the trained method over whole datasets on a Ray cluster (beside ``training/``).

    batch_inference.py  ``run_inference``: ``kgi infer``, the try-on stages over a split with Ray Data actor pools
    sources.py          the pairs a job reads: a VITON-HD root or ``kgi convert`` shards, as Ray Data datasets
    results.py          the output folder of ``kgi infer``: its settings, each pair's PNG and record, manifest, metrics
    commands/infer.py   the ``kgi infer`` command
"""
