"""Event plumbing: the transactional outbox and its relay, idempotent consumers with
bounded retries, dead letters (recorded, drained from RabbitMQ, replayed), the
correlation id carried into tasks, their models, admin and periodic tasks.
"""
