"""Performance measurement: the ``make bench`` suite (``loadtests.bench``)."""
