"""Shared plumbing that imports no other app.

``http`` (errors, parsers, negotiation, pagination, request ids, idempotency), ``db``
(the replica router and its middleware), ``cache`` (L1 + Redis with invalidation),
``events`` (outbox, consumers, dead letters); models stay under the ``core`` label.
"""
