# One image for every role: web (gunicorn), worker (celery) and beat.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 \
    DJANGO_SETTINGS_MODULE=config.settings VAR_DIR=/app/var

WORKDIR /app
# torch==2.13.0 from the CPU index keeps the image small; a GPU worker image can swap the
# index for a CUDA one.
COPY requirements.txt .
RUN pip install --index-url https://download.pytorch.org/whl/cpu torch==2.13.0 \
    && pip install -r requirements.txt

COPY . .
RUN useradd --create-home --uid 1000 app && mkdir -p /app/var && chown -R app /app/var \
    && DEBUG=false SECRET_KEY="build-only-$(python -c 'import secrets; print(secrets.token_hex(32))')" \
       python manage.py collectstatic --noinput
USER app

EXPOSE 8000
CMD ["gunicorn", "config.wsgi", "--bind", "0.0.0.0:8000", "--workers", "3", "--access-logfile", "-"]
