from django.apps import AppConfig


class ProcAppConfig(AppConfig):
    """The tests' own processors, installed only in test settings."""

    name = "tests.procapp"
    label = "procapp"
