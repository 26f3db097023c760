"""Run the benchmark suite: ``python -m loadtests.bench --help``."""

from loadtests.bench.cli import main

raise SystemExit(main())
