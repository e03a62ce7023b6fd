"""The HTTP API, one module per resource (views and their serializers together) plus shared plumbing.

Imports nothing on purpose: DRF imports ``loop.api.access`` and ``loop.api.parsers`` (the default
authenticator and parser) while ``rest_framework.views`` is still being imported, so the package
itself must not pull in a view.
"""
