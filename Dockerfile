# Darkroom's image: one image for `darkroom serve` (the default command), `darkroom worker` and
# `darkroom migrate`. Settings come from DARKROOM_* variables (see .env.example).

# Build: the wheels of Darkroom and of everything it needs.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY app ./app
COPY migrations ./migrations
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

# Run: those wheels installed in a slim image, run by a user without privileges.
FROM python:3.11-slim
RUN useradd --create-home --uid 10001 darkroom && mkdir /data && chown darkroom /data
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-index --find-links /wheels darkroom && rm -rf /wheels
USER darkroom
WORKDIR /home/darkroom
ENV DARKROOM_DATA_DIR=/data DARKROOM_HOST=0.0.0.0 DARKROOM_PORT=8000 PYTHONUNBUFFERED=1
EXPOSE 8000
# Ready: the database, the queue and the asset store answer (a worker overrides this with its
# metrics port, as docker-compose.yml does).
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/readyz', timeout=4)"]
CMD ["darkroom", "serve"]
