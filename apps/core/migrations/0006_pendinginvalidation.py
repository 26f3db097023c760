from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("core", "0005_idempotencyrecord_response_bytes"),
    ]

    operations = [
        migrations.CreateModel(
            name="PendingInvalidation",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("kind", models.CharField(max_length=64)),
                ("idents", models.JSONField()),
                ("created_at", models.DateTimeField(auto_now_add=True)),
            ],
        ),
    ]
