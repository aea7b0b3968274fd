from django.db import migrations


def create(apps, schema_editor):
    DeviceProfile = apps.get_model("leaderboard", "DeviceProfile")
    DeviceProfile.objects.get_or_create(
        slug="local-cpu",
        defaults={
            "name": "Local CPU (PyTorch eager)",
            "description": "The CPU of the machine running the latency worker, with "
            "PyTorch eager mode; threads = all of its cores unless set.",
            "device_class": "cpu",
            "runtime": "eager",
            "dtype": "float32",
            "active": True,
        },
    )


def remove(apps, schema_editor):
    apps.get_model("leaderboard", "DeviceProfile").objects.filter(slug="local-cpu").delete()


class Migration(migrations.Migration):
    dependencies = [("leaderboard", "0002_submission")]
    operations = [migrations.RunPython(create, remove)]
