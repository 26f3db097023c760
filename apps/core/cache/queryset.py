"""A QuerySet for cached models: bulk writes invalidate on commit, none go around the cache.

Signals cover ``save()`` and ``delete()`` (a queryset ``delete()`` sends ``post_delete``
per row once a receiver is connected). ``update()``, ``bulk_update()`` and
``bulk_create(update_conflicts=True)`` send no signal, so this QuerySet invalidates the
rows they touch itself, once the transaction commits. Writes that touch only fields the
cached documents do not show (``last_active``, ``last_login``) invalidate nothing.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, ClassVar, TypeVar

from django.db import models, transaction

from apps.core.cache import invalidate_on_commit

M = TypeVar("M", bound=models.Model)


class CacheBypassError(RuntimeError):
    """A bulk write on a cached model that this QuerySet cannot invalidate."""


class InvalidatingQuerySet(models.QuerySet[M]):
    """Invalidate ``cache_kind:pk`` after bulk writes to ``cached_fields``.

    Subclass with ``cache_kind`` (the key's type, e.g. ``"user"``) and
    ``cached_fields`` (the model fields any cached document shows, by name).
    """

    cache_kind: ClassVar[str]
    cached_fields: ClassVar[frozenset[str]]

    def _touches_cache(self, fields: Iterable[str]) -> bool:
        names = set()
        for name in fields:
            field = self.model._meta.get_field(name)
            names.update({field.name, getattr(field, "attname", field.name)})
        return bool(names & self.cached_fields)

    def update(self, **kwargs: Any) -> int:
        """Update the matching rows; invalidate the cached ones on commit."""
        if not self._touches_cache(kwargs):
            return super().update(**kwargs)
        with transaction.atomic(using=self.db):
            # Lock first so the ids invalidated are exactly the rows updated.
            pks = list(self.select_for_update().values_list("pk", flat=True))
            if not pks:
                return 0
            updated = self.model._base_manager.using(self.db).filter(pk__in=pks).update(**kwargs)
            invalidate_on_commit(self.cache_kind, pks, using=self.db)
        return updated

    def bulk_update(
        self, objs: Iterable[M], fields: Iterable[str], batch_size: int | None = None
    ) -> int:
        """Update ``objs``; invalidate them on commit when a cached field changes."""
        objs = list(objs)
        fields = list(fields)
        updated = super().bulk_update(objs, fields, batch_size=batch_size)
        if self._touches_cache(fields):
            invalidate_on_commit(self.cache_kind, [obj.pk for obj in objs], using=self.db)
        return updated

    def bulk_create(self, objs: Iterable[M], *args: Any, **kwargs: Any) -> list[M]:
        """Insert ``objs``; when conflicts update existing rows, invalidate those on commit.

        New rows need no invalidation: only rows that exist are ever cached.
        """
        if not kwargs.get("update_conflicts"):
            return super().bulk_create(objs, *args, **kwargs)
        update_fields = kwargs.get("update_fields") or []
        with transaction.atomic(using=self.db):
            created = super().bulk_create(objs, *args, **kwargs)
            if self._touches_cache(update_fields):
                pks = [obj.pk for obj in created]
                if any(pk is None for pk in pks):
                    raise CacheBypassError(
                        f"bulk_create(update_conflicts=True) on {self.model.__name__} could "
                        "not tell which rows it updated, so their cached copies cannot be "
                        "invalidated; update them with update() or save() instead."
                    )
                invalidate_on_commit(self.cache_kind, pks, using=self.db)
        return created
