"""Deployments: the seed's schedule table as code, built from one platform YAML file.

``python -m deployments.serve --config deployments/platform.example.yaml`` registers blocks,
concurrency limits and deployments and serves them; ``strongroom up`` does it on a local server.
"""
