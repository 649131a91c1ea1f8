"""Checks of the deployment files (docker/, docker-compose*.yml, deploy/k8s) that run without a Docker engine."""
