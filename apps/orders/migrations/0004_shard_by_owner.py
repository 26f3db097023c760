from django.db import migrations


def shard_by_owner(apps, schema_editor):
    # Only with DATABASE_SHARD_URLS; otherwise the tables stay as they are.
    from apps.orders.sharding.layout import sharded
    from apps.orders.sharding.setup import shards_setup

    if not sharded():
        return
    with schema_editor.connection.cursor() as cursor:
        shards_setup(cursor)


class Migration(migrations.Migration):
    dependencies = [
        ("orders", "0003_orderline_owner"),
        ("core", "0007_outboxevent_shard_key"),
    ]

    operations = [migrations.RunPython(shard_by_owner, migrations.RunPython.noop, elidable=False)]
