from django.apps import AppConfig


class TaskAppConfig(AppConfig):
    """The tests' Django tasks (tests/test_django_tasks*.py), installed only in test settings."""

    name = "tests.taskapp"
    label = "taskapp"

    def ready(self) -> None:
        from tests.taskapp.signals import connect

        connect()
