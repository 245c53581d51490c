from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("accounts", "0001_initial")]

    operations = [
        migrations.RunSQL(
            sql=(
                "CREATE SEQUENCE accounts_variable_symbol_seq "
                "START WITH 1000001 MAXVALUE 9999999999"
            ),
            reverse_sql="DROP SEQUENCE accounts_variable_symbol_seq",
        ),
    ]
