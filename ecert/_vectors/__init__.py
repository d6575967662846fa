"""The conformance vectors' machinery (public through :mod:`ecert.conformance`).

:mod:`~ecert._vectors.keys` derives every key from a seed and signs deterministically;
:mod:`~ecert._vectors.world` builds the regions' published bundles (trust lists, status
lists, logs) from the pure formats; :mod:`~ecert._vectors.cases` states each case and
what a verifier must answer; :mod:`~ecert._vectors.runner` runs a case with the Python
verifier. Nothing here touches a registry, a database or the network.
"""
