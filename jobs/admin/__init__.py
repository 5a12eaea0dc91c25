"""Jobs, queues and API tokens in the Django admin (registered on import, by Django's autodiscovery).

Status fields are read-only everywhere: the admin never saves a job (its page is view-only), and its
bulk actions go through :mod:`jobs.service`, so every change is a state-machine transition that also
updates Redis.

* :mod:`~jobs.admin.job_admin`: the job list and page; :mod:`~jobs.admin.job_actions` its actions;
  :mod:`~jobs.admin.attempts` the attempts on the page; :mod:`~jobs.admin.filters` the list's filters.
* :mod:`~jobs.admin.queue_state`: pause and resume queues.
* :mod:`~jobs.admin.tokens`: API tokens.
* :mod:`~jobs.admin.batches`: batches, their progress, and cancel.
* :mod:`~jobs.admin.display`: how values are shown (also by the scheduler's admin).
"""

from jobs.admin.batches import BatchAdmin
from jobs.admin.display import pretty_json
from jobs.admin.job_admin import JobAdmin
from jobs.admin.queue_state import QueueStateAdmin
from jobs.admin.tokens import ApiTokenAdmin

__all__ = ["ApiTokenAdmin", "BatchAdmin", "JobAdmin", "QueueStateAdmin", "pretty_json"]
