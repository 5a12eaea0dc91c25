"""The job types that carry Django tasks (apart from the backend, so the workers' processors name them
without importing the Tasks framework)."""

SYNC_TYPE = "django_task"
ASYNC_TYPE = "django_task_async"
TASK_TYPES = (SYNC_TYPE, ASYNC_TYPE)
