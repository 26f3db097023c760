from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("core", "0006_pendinginvalidation"),
    ]

    operations = [
        migrations.AddField(
            model_name="outboxevent",
            name="shard_key",
            field=models.BigIntegerField(blank=True, null=True),
        ),
    ]
