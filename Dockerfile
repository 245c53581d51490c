# Production image: gunicorn (web), Celery worker and Celery beat all run from it.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1

# WeasyPrint's system libraries (Pango, HarfBuzz with its subset library) and a font.
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        libpango-1.0-0 libpangoft2-1.0-0 libharfbuzz0b libharfbuzz-subset0 \
        libfontconfig1 fonts-dejavu-core \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --create-home --uid 1000 billing

WORKDIR /app
COPY requirements.lock .
RUN pip install -r requirements.lock

COPY --chown=billing:billing . .

# Translations and static files are built into the image. Settings need values
# to import; these build-only ones are never used at run time.
RUN python -c "from billing_site.devtools.i18n import compile_catalogs; compile_catalogs()" \
    && DJANGO_SETTINGS_MODULE=billing_site.settings.production \
       SECRET_KEY=build-only-not-a-secret-build-only-not-a-secret-build-only \
       ALLOWED_HOSTS=build EMAIL_URL=consolemail:// \
       DATABASE_URL=postgres://build@localhost/build REDIS_URL=redis://localhost:6379/0 \
       STATIC_ROOT=/app/staticfiles \
       python manage.py collectstatic --noinput -v 0 \
    && mkdir -p /app/media && chown billing:billing /app/media

USER billing
EXPOSE 8000
ENV DJANGO_SETTINGS_MODULE=billing_site.settings.production \
    STATIC_ROOT=/app/staticfiles \
    MEDIA_ROOT=/app/media

CMD ["gunicorn", "billing_site.wsgi", "--bind", "0.0.0.0:8000", "--workers", "3", \
     "--access-logfile", "-", "--forwarded-allow-ips", "*"]
