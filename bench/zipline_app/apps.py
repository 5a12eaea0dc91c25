from django.apps import AppConfig


class BenchConfig(AppConfig):
    """The benchmark's job types for ZipLine, installed only by bench/zipline_settings.py."""

    name = "bench.zipline_app"
    label = "zipline_bench"
