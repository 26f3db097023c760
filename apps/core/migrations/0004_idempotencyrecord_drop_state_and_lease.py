from django.db import migrations, models


def delete_unfinished_records(apps, schema_editor):
    # A row without a response was a claim whose request never finished: its key is free.
    IdempotencyRecord = apps.get_model("core", "IdempotencyRecord")
    IdempotencyRecord.objects.filter(response_status__isnull=True).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("core", "0003_outboxevent_traceparent"),
    ]

    operations = [
        migrations.RunPython(delete_unfinished_records, migrations.RunPython.noop),
        migrations.RemoveField(model_name="idempotencyrecord", name="state"),
        migrations.RemoveField(model_name="idempotencyrecord", name="lease_expires_at"),
        migrations.AlterField(
            model_name="idempotencyrecord",
            name="response_status",
            field=models.PositiveSmallIntegerField(),
        ),
    ]
