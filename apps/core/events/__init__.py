"""Event plumbing: the transactional outbox and its relay, the registry of event types
and their consumer tasks (filled by the apps), idempotent consumers with bounded
retries, dead letters (recorded, drained from RabbitMQ, replayed), the correlation id
carried into tasks, their models, admin and periodic tasks.
"""
