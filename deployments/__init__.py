"""The Ray Serve application of kgi-platform: the try-on DAG, dynamic batching and A/B versions.

    app.py          ``build_app(args)``, the application builder of the Serve config files; ``deploy(config)``
    config.py       the application's ``args`` (limits, devices), a version's ``VersionArgs`` and ``ModelVersion``
    ingress.py      FastAPI routes (``/v1/tryon``, ``/v1/feedback``, ``/v1/models``, ``/v1/ab...``, ``/healthz``)
    form.py         the try-on multipart form and its OpenAPI description
    preprocess.py   ``Preprocess``: uploads -> ``TryOnSample`` (decoding, 3:4 normalisation, mask, landmarks)
    stages.py       ``Keypoints``, ``ParseWarp``, ``Inpaint`` (batched): thin shells around ``TryOnPipeline``,
                    each serving every version (multiplexed by weights)
    batching.py     ``Batcher``: the dynamic batching of ``Inpaint`` (closes a batch when the model is free)
    compute.py      ``ComputeThread``: the one thread each stage replica runs its model calls on
    routing.py      the served versions and experiment (the Ingress's ``user_config``) and A/B routing
    experiments.py  ``ExperimentStore``: assignments and outcomes (SQLite), the report, writes through Serve
    errors.py       the JSON error format and how exceptions map to HTTP statuses
    encoding.py     images and parse maps to PNG / base64
    commands/serve.py   the ``kgi serve`` command

Configs live in ``platform/serve/`` (``local.yaml``: one machine, CPU; ``gpu-cluster.yaml``). Importing this
package imports nothing heavy; the modules above import Ray and torch.
"""
