# Stand-in for the official nginx image: Debian's nginx, its workers' user
# "nginx", logs to stdout and stderr, and the official entrypoint's template
# step (envsubst of /etc/nginx/templates/*.template into /etc/nginx/conf.d/).
ARG OFFLINE_BASE_IMAGE=chatroom-offline/debian:bookworm
FROM ${OFFLINE_BASE_IMAGE}
RUN apt-get update \
    && apt-get install --yes --no-install-recommends nginx gettext-base \
    && rm -rf /var/lib/apt/lists/* /etc/nginx/sites-enabled/* /etc/nginx/conf.d/* \
    && useradd --system --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin --user-group nginx \
    && mkdir -p /var/cache/nginx \
    && ln -sf /dev/stdout /var/log/nginx/access.log \
    && ln -sf /dev/stderr /var/log/nginx/error.log \
    && mkdir -p /docker-entrypoint.d /etc/nginx/templates
COPY nginx-entrypoint.sh /docker-entrypoint.sh
EXPOSE 80 443
STOPSIGNAL SIGQUIT
ENTRYPOINT ["/docker-entrypoint.sh"]
CMD ["nginx", "-g", "daemon off;"]
