"""`python -m fsar_bench ...` (what torchrun launches) is the `fsar-bench` command."""

from fsar_bench.cli import main

main()
