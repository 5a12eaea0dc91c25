"""``Job.has_children``: set on every job that some job depends on, so the recorder reads it from its
finish statement instead of looking the edges up after every batch of outcomes (jobs.endings)."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("jobs", "0009_batches"),
    ]

    operations = [
        migrations.AddField(
            model_name="job",
            name="has_children",
            field=models.BooleanField(db_default=False, default=False),
        ),
        migrations.RunSQL(
            "UPDATE jobs_job SET has_children = true WHERE id IN (SELECT parent_id FROM jobs_jobdependency)",
            migrations.RunSQL.noop,
        ),
    ]
