"""ZipLine as a backend of Django's Tasks framework (``django.tasks`` on Django 6, ``django_tasks`` before).

``backend.ZipLineBackend`` turns ``task.enqueue()`` into a ZipLine job; ``runner`` runs it on a worker;
``results`` maps a job's rows back to a ``TaskResult``. See docs/django-tasks.md.
"""
