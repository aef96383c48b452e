"""Alembic environment: migrations run on the connection modeldepot hands over."""

from __future__ import annotations

from alembic import context

from modeldepot.catalog import models as _catalog_models  # noqa: F401 - registers tables
from modeldepot.db import Base
from modeldepot.downloads import models as _download_models  # noqa: F401 - registers tables
from modeldepot.health import models as _health_models  # noqa: F401 - registers tables
from modeldepot.instance import InstanceLeaseRow as _lease  # noqa: F401 - registers its table
from modeldepot.revisions import models as _revision_models  # noqa: F401 - registers tables

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
