"""Private local servers, started and stopped the same way everywhere.

The one launcher behind the test harness, ``make bench``, ``make stack`` and
``make dr-drill``: ``processes`` (ports, readiness waits, process-group stops),
``binaries`` (finding or installing server programs), ``postgres`` (initdb, base
backups, a server and its replicas), ``redis``, ``rabbitmq``, and ``servers`` (a set of
throw-away instances in one temporary directory, as tests and benchmarks use them).
"""
