"""Unique jobs (their key on the job, the claims table) and expiry (expires_at, the `expired` state).

`job_finished` is rebuilt because `expired` joins the finished states it covers.
"""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("jobs", "0006_flow_control"),
    ]

    operations = [
        migrations.CreateModel(
            name="UniqueClaim",
            fields=[
                ("key", models.CharField(max_length=255, primary_key=True, serialize=False)),
                ("job_id", models.UUIDField()),
                ("until", models.CharField(help_text="start or finish: when the job lets the key go.", max_length=8)),
                ("expires_at", models.DateTimeField(help_text="The end of the window: the key is free after it.")),
            ],
        ),
        migrations.RemoveIndex(
            model_name="job",
            name="job_finished",
        ),
        migrations.AddField(
            model_name="job",
            name="expires_at",
            field=models.DateTimeField(blank=True, help_text="Not started by then: it expires.", null=True),
        ),
        migrations.AddField(
            model_name="job",
            name="unique_key",
            field=models.CharField(blank=True, max_length=255, null=True),
        ),
        migrations.AlterField(
            model_name="job",
            name="status",
            field=models.CharField(
                choices=[
                    ("pending", "Pending"),
                    ("scheduled", "Scheduled"),
                    ("running", "Running"),
                    ("retrying", "Retrying"),
                    ("completed", "Completed"),
                    ("failed", "Failed"),
                    ("cancelled", "Cancelled"),
                    ("expired", "Expired"),
                ],
                default="pending",
                max_length=16,
            ),
        ),
        migrations.AddIndex(
            model_name="job",
            index=models.Index(
                condition=models.Q(("status__in", ["completed", "failed", "cancelled", "expired"])),
                fields=["completed_at"],
                name="job_finished",
            ),
        ),
        migrations.AddIndex(
            model_name="job",
            index=models.Index(
                condition=models.Q(("expires_at__isnull", False), ("status__in", ["pending", "scheduled", "retrying"])),
                fields=["expires_at"],
                name="job_expiry",
            ),
        ),
        migrations.AddIndex(
            model_name="uniqueclaim",
            index=models.Index(fields=["expires_at"], name="unique_claim_expiry"),
        ),
    ]
