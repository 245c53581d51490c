"""Give `pgtrigger.ignore` a database default of "ignore nothing" ('{}').

Every django-pgtrigger trigger first asks `_pgtrigger_should_ignore()`, which reads the
setting inside a BEGIN ... EXCEPTION block. While the setting is undefined, that read
raises and the block's subtransaction is rolled back on every row; each rollback walks
the transaction's queue of deferred trigger events (our balanced-transfer check is
deferred), so a transaction that writes many ledger rows (a statement import, a bulk
load) became quadratic in its size. With a defined default the read succeeds and no
subtransaction is rolled back. The meaning is unchanged: the empty list ignores no
trigger, and `pgtrigger.ignore(...)` still overrides it per transaction.

ALTER DATABASE needs the database's owner; where the application's role is not the
owner the default is skipped with a notice (set it once as the owner, or in the role's
settings), and the triggers work as before, only slower.
"""

from django.db import migrations

SET_DEFAULT = """
DO $$
BEGIN
    EXECUTE format('ALTER DATABASE %I SET pgtrigger.ignore = %L', current_database(), '{}');
EXCEPTION WHEN insufficient_privilege THEN
    RAISE NOTICE 'pgtrigger.ignore default not set: the role does not own the database';
END
$$;
"""

RESET_DEFAULT = """
DO $$
BEGIN
    EXECUTE format('ALTER DATABASE %I RESET pgtrigger.ignore', current_database());
EXCEPTION WHEN insufficient_privilege THEN
    NULL;
END
$$;
"""


class Migration(migrations.Migration):
    dependencies = [("credit", "0003_debit_hot_path")]

    operations = [
        migrations.RunSQL(SET_DEFAULT, RESET_DEFAULT),
        # This connection started before the default existed.
        migrations.RunSQL("SET pgtrigger.ignore = '{}'", migrations.RunSQL.noop),
    ]
