"""Wire formats: compact JWS, certificate tokens, status lists, trust lists, bundles.

This package is pure: it knows nothing of storage or the CLI. Only ``jose`` imports pyjwt.
"""
