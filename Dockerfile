FROM python:3.11-slim
WORKDIR /srv/darkroom
COPY pyproject.toml README.md ./
COPY app ./app
COPY migrations ./migrations
RUN pip install --no-cache-dir . && useradd --create-home darkroom && mkdir /data && chown darkroom /data
USER darkroom
ENV DARKROOM_DATA_DIR=/data DARKROOM_HOST=0.0.0.0 DARKROOM_PORT=8000
EXPOSE 8000
CMD ["darkroom", "serve"]
