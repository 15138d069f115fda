"""Deployments: the seed's schedule table as code, built from one platform YAML file.

``python -m deployments.serve --config FILE`` registers blocks, concurrency limits and
deployments and serves them from one process (``strongroom up`` does it on a local server);
``python -m deployments.deploy --config FILE --work-pool NAME`` puts the same deployments on a
work pool, one queue per host, for ``prefect worker start`` on each host.
"""
