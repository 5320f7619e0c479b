"""Settings of a minimal Django project: JSON views, no database.

Everything that differs between a laptop and production comes from the
environment, so the same code runs in both.
"""

from __future__ import annotations

import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent

# Set DJANGO_SECRET_KEY in production; the fallback only suits local runs.
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "insecure-local-only-key")
DEBUG = os.environ.get("DJANGO_DEBUG", "") == "1"
ALLOWED_HOSTS = os.environ.get("DJANGO_ALLOWED_HOSTS", "127.0.0.1,localhost,[::1]").split(",")

INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.staticfiles",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.common.CommonMiddleware",
]

ROOT_URLCONF = "mysite.urls"
WSGI_APPLICATION = "mysite.wsgi.application"

# No database: the views below serve a read-only catalogue from memory.
DATABASES: dict[str, dict[str, str]] = {}

USE_TZ = True
TIME_ZONE = "UTC"
LANGUAGE_CODE = "en-us"
USE_I18N = False

# Static files: `python manage.py collectstatic` copies them, with a content hash in each
# name, into STATIC_ROOT; swserve serves that directory itself, without nginx or WhiteNoise:
#   swserve mysite.wsgi:application --static /static=staticfiles --static-immutable
STATIC_URL = "/static/"
STATIC_ROOT = Path(os.environ.get("DJANGO_STATIC_ROOT", BASE_DIR / "staticfiles"))
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.ManifestStaticFilesStorage",
    },
}
