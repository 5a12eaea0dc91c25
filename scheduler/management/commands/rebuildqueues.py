"""``python manage.py rebuildqueues``: rebuild every queue in Redis from the database, on demand.

The same work the scheduler does when Redis loses its data (:func:`scheduler.reconcile.rebuild`), then a
sweep of orphan ids. Safe while workers and schedulers run: it only adds what is missing and drops what
no live row explains.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser
from django.utils import timezone

from jobs.broker import get_broker
from jobs.command_errors import dependency_errors
from scheduler.reconcile import ReconcileReport, drop_orphans, rebuild
from scheduler.service import default_identity


class Command(BaseCommand):
    help = "Rebuild every queue in Redis from the database (ready, delayed, leases, paused flags) and drop orphan ids."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--config", help="YAML configuration file (JQS_CONFIG)")

    def handle(self, *args: Any, **options: Any) -> None:
        with dependency_errors():
            config = settings.ZIPLINE
            broker = get_broker()
            batch = config.scheduler.batch_size
            report = rebuild(
                broker, owner=default_identity(), lease_ttl=config.worker.lease_ttl, batch=batch, lock=False
            )
            assert report is not None  # unlocked: never refused
            now = timezone.now()
            cutoff = now - timedelta(seconds=config.scheduler.reconcile_grace)
            sweep = ReconcileReport()
            for queue in sorted(broker.queue_names()):
                drop_orphans(broker, queue, cutoff=cutoff, now=now, batch=batch, report=sweep)
            self.stdout.write(
                f"rebuilt {len(report.restored)} queue(s): {report.total_restored} entries restored of {report.checked} live jobs, "
                f"{sweep.orphans} orphan id(s) dropped, {report.paused_synced} paused flag(s) set"
            )
