# mlcrawl in a container: `docker build -t mlcrawl:0.1.0 .`, then e.g.
#   docker run --rm -v /mnt/experiments:/data:ro -v mlcrawl-catalog:/catalog mlcrawl:0.1.0 crawl /data
# The catalog lives on the /catalog volume (the working directory, so ./mlcrawl.duckdb lands there).
FROM python:3.12-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /build
COPY pyproject.toml README.md ./
COPY src ./src
COPY crawlers ./crawlers
RUN pip install . && rm -rf /build

# A non-root user with a fixed uid, matching runAsUser in deploy/k8s/cronjob.yaml.
RUN useradd --system --uid 10001 --user-group --no-create-home mlcrawl \
    && mkdir /catalog && chown mlcrawl:mlcrawl /catalog
USER mlcrawl
WORKDIR /catalog
VOLUME ["/catalog"]

ENTRYPOINT ["mlcrawl"]
CMD ["--help"]
