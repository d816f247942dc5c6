"""Make the audit table append-only in the database itself (see audit/dbtriggers.py)."""

from django.db import migrations

from audit import dbtriggers


def up(apps, schema_editor):
    dbtriggers.install(schema_editor.connection)


def down(apps, schema_editor):
    dbtriggers.remove(schema_editor.connection)


class Migration(migrations.Migration):
    dependencies = [("audit", "0001_initial")]
    operations = [migrations.RunPython(up, down)]
