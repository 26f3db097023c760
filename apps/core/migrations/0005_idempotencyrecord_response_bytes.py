import json

from django.db import migrations, models


def render_stored_bodies(apps, schema_editor):
    # Rows from before keep their (jsonb-ordered) content, rendered as the API renders JSON.
    IdempotencyRecord = apps.get_model("core", "IdempotencyRecord")
    for record in IdempotencyRecord.objects.iterator():
        body = json.dumps(record.response_body, ensure_ascii=False, separators=(",", ":"))
        record.response_bytes = body.encode()
        record.save(update_fields=["response_bytes"])


class Migration(migrations.Migration):
    dependencies = [
        ("core", "0004_idempotencyrecord_drop_state_and_lease"),
    ]

    operations = [
        migrations.AddField(
            model_name="idempotencyrecord",
            name="response_bytes",
            field=models.BinaryField(default=b""),
            preserve_default=False,
        ),
        migrations.AddField(
            model_name="idempotencyrecord",
            name="response_content_type",
            field=models.CharField(default="application/json", max_length=100),
            preserve_default=False,
        ),
        migrations.RunPython(render_stored_bodies, migrations.RunPython.noop),
        migrations.RemoveField(model_name="idempotencyrecord", name="response_body"),
        migrations.RenameField(
            model_name="idempotencyrecord", old_name="response_bytes", new_name="response_body"
        ),
    ]
