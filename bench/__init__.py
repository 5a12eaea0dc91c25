"""Benchmarks of ZipLine against other Python job queues (see bench/README.md)."""
