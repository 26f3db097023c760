"""The ``make bench`` suite: throughput ratios against a bare WSGI floor.

Every target (the bare WSGI callable, the project itself) runs under its own gunicorn
on a free port; wrk drives every case in interleaved rounds, and each case's req/s is
reported as a ratio to the floor's, measured in the same run. A new benchmark is one
more entry in ``loadtests.bench.cases.CASES``.
"""
