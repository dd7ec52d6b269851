# Stand-in for the official postgres image: Debian's PostgreSQL with an
# entrypoint that honours the same variables (POSTGRES_USER, POSTGRES_PASSWORD,
# POSTGRES_DB, PGDATA), the same data directory and the same socket folder,
# writable by all (3777), as a tmpfs over it is too.
ARG OFFLINE_BASE_IMAGE=chatroom-offline/debian:bookworm
FROM ${OFFLINE_BASE_IMAGE}
RUN mkdir -p /etc/postgresql-common/createcluster.d \
    && echo "create_main_cluster = false" > /etc/postgresql-common/createcluster.d/no-main.conf \
    && apt-get update \
    && apt-get install --yes --no-install-recommends postgresql-15 \
    && rm -rf /var/lib/apt/lists/* \
    && mkdir -p /var/lib/postgresql/data /var/run/postgresql \
    && chown -R postgres:postgres /var/lib/postgresql /var/run/postgresql \
    && chmod 3777 /var/run/postgresql
ENV PATH=/usr/lib/postgresql/15/bin:$PATH \
    PGDATA=/var/lib/postgresql/data
COPY postgres-entrypoint.sh /usr/local/bin/docker-entrypoint.sh
USER postgres
VOLUME /var/lib/postgresql/data
EXPOSE 5432
STOPSIGNAL SIGINT
ENTRYPOINT ["docker-entrypoint.sh"]
CMD ["postgres"]
