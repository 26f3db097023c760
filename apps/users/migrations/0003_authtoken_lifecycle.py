import datetime

from django.conf import settings
from django.db import migrations, models
from django.db.models import F


def expire_existing_tokens(apps, schema_editor):
    # Tokens issued before expiry existed live AUTH_TOKEN_TTL_SECONDS from their creation.
    AuthToken = apps.get_model("users", "AuthToken")
    ttl = datetime.timedelta(seconds=settings.AUTH_TOKEN_TTL_SECONDS)
    AuthToken.objects.using(schema_editor.connection.alias).update(expires_at=F("created_at") + ttl)


class Migration(migrations.Migration):

    dependencies = [
        ("users", "0002_user_cached_manager"),
    ]

    operations = [
        migrations.AddField(
            model_name="authtoken",
            name="expires_at",
            field=models.DateTimeField(null=True),
        ),
        migrations.AddField(
            model_name="authtoken",
            name="last_used_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.RunPython(expire_existing_tokens, migrations.RunPython.noop),
        migrations.AlterField(
            model_name="authtoken",
            name="expires_at",
            field=models.DateTimeField(),
        ),
        migrations.AddIndex(
            model_name="authtoken",
            index=models.Index(fields=["user", "created_at"], name="users_token_user_created"),
        ),
    ]
