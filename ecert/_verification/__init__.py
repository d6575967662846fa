"""The verification pipeline, pure: no fetching, caching, clocks or files.

``ecert.verify.Verifier`` is the edge: it holds the trust lists it fetched and verified,
the status lists it cached and the state file, and offers them to the pipeline as a
:class:`~ecert._verification.pipeline.TrustView`. The pipeline
(:func:`~ecert._verification.pipeline.run`) reads a token with the decoder of its format
(:mod:`~ecert._verification.decoders`: compact certificate token, QR text, purpose-bound
copy), each producing the same checked shape, then applies small named policies
(:mod:`~ecert._verification.policies`: type recognition, key validity, issue time,
audience and purpose, lifecycle) and reports the outcome. A check that fails raises
:class:`~ecert._verification.vocabulary.Failure` with its status and stable code.

Nothing here imports SQLAlchemy, Alembic, jsonschema or fcntl: a verifier-only install
verifies with it.
"""
