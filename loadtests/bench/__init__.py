"""The ``make bench`` suite: throughput ratios against a bare WSGI floor or a peer.

Every target (the bare WSGI callable, the project itself, the textbook peer) runs under
its own gunicorn on a free port; wrk drives every case in interleaved rounds, and each
case's req/s is reported as a ratio to the floor's, and to its peer's where it has one,
measured in the same run. A new benchmark is one more entry in
``loadtests.bench.cases.CASES``; the printed sections (``loadtests.bench.sections``)
measure what a wrk case cannot: the edge, order placement, the rate limiter, metrics.
"""
