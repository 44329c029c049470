# A stand-in for postgres:15 built from Debian bookworm's postgresql-15, for hosts that reach Debian's
# mirrors but no container registry (assets_tests/test_docker_stack.py builds it). It keeps the interface
# docker-compose.yml relies on: POSTGRES_USER, POSTGRES_PASSWORD and POSTGRES_DB, scripts in
# /docker-entrypoint-initdb.d run once on an empty data folder, the data in /var/lib/postgresql/data, and
# pg_isready on PATH for the healthcheck.
ARG DEBIAN_IMAGE
FROM ${DEBIAN_IMAGE}
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends postgresql-15 \
    && rm -rf /var/lib/apt/lists/* \
    && mkdir -p /docker-entrypoint-initdb.d /var/lib/postgresql/data /var/run/postgresql \
    && chown -R postgres:postgres /var/lib/postgresql /var/run/postgresql \
    && chmod 700 /var/lib/postgresql/data
COPY postgres-entrypoint.sh /usr/local/bin/docker-entrypoint.sh
ENV PATH=/usr/lib/postgresql/15/bin:$PATH PGDATA=/var/lib/postgresql/data
USER postgres
EXPOSE 5432
STOPSIGNAL SIGINT
ENTRYPOINT ["docker-entrypoint.sh"]
CMD ["postgres"]
