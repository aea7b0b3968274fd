from django.db import migrations


def seed(apps, schema_editor):
    from leaderboard.suites import seed as seed_suites

    seed_suites(apps.get_model("leaderboard", "Suite"), apps.get_model("leaderboard", "Task"))


class Migration(migrations.Migration):
    dependencies = [("leaderboard", "0004_probe_resends")]
    # Re-running the seed is harmless, so there is nothing to undo.
    operations = [migrations.RunPython(seed, migrations.RunPython.noop)]
