# syntax=docker/dockerfile:1
# One image for every platform process: `telemed serve` (web, the default), `telemed worker`
# and one-shot `telemed manage ...` commands (compose.yaml runs `migrate` that way).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    TELEMED_STATIC_ROOT=/app/staticfiles

WORKDIR /app

# Dependencies first, read from pyproject.toml alone, so a code change does not reinstall them.
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt

COPY . .
# Editable on purpose: the settings find frontend/ (templates, static) beside platform/. A plain
# `pip install .` would move the packages to site-packages and leave frontend/ out of reach.
RUN pip install --no-deps -e . \
    && python -m compileall -q platform

# Static files are collected once, here. With TELEMED_DEBUG=0 the settings insist on a secret
# of 50+ characters: a random one exists for this command only and is not kept in the image.
RUN TELEMED_DEBUG=0 \
    TELEMED_SECRET_KEY="$(python -c 'import secrets; print(secrets.token_urlsafe(50))')" \
    telemed manage collectstatic --noinput --verbosity 0

RUN useradd --system --uid 10001 --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin telemed
RUN mkdir -p /var/lib/telemed && chown telemed /var/lib/telemed
USER telemed

EXPOSE 8000
CMD ["telemed", "serve", "--port", "8000"]
