"""Prepare the primary region's database: ``python -m deploy.region.seed`` (DATABASE_URL).

Create the database, migrate, and add the product the drill orders (stock for every
order it could place); print its id.
"""

from __future__ import annotations

import os
import sys
from decimal import Decimal

from deploy.stack.release import create_database

SKU = "REGION-DRILL"
STOCK = 10**9


def main() -> int:
    create_database(os.environ["DATABASE_URL"])
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django
    from django.core.management import call_command

    django.setup()
    from apps.orders.models import Product

    call_command("migrate", interactive=False, verbosity=0)
    product, _ = Product.objects.get_or_create(
        sku=SKU, defaults={"name": "Region drill order", "price": Decimal("1.00"), "stock": STOCK}
    )
    print(product.pk, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
