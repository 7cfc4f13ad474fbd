"""Offline checks of the Dockerfile and the Kubernetes manifests, and of the NATS permissions they deploy."""
