# Convonet API and worker image (one image, two commands: `convonet api`, `convonet worker`).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# Pinned dependencies first, in their own layer, so code changes do not reinstall them.
COPY requirements.lock ./
RUN pip install -r requirements.lock

# Then the project itself, without re-resolving: requirements.lock is the whole dependency set.
COPY . .
RUN pip install --no-deps . \
    && rm -rf build *.egg-info

# Run as an unprivileged user; var/ is the only place the app writes (DATA_DIR).
RUN useradd --create-home --uid 10001 --user-group convonet \
    && mkdir -p /app/var \
    && chown convonet:convonet /app/var
USER convonet
ENV DATA_DIR=/app/var

EXPOSE 8000
CMD ["convonet", "api"]
