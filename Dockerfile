# A Strata broker image built FROM scratch: the static binaries and nothing
# else (no shell, no package manager, no registry needed to build it).
#
# The binaries must exist first; build them on the host:
#
#   make build && docker build -t strata .     # or: make cluster-up
#
# Run one single-node broker, then use `strata` on the host as usual. Publish
# the API on the same port: a broker without --advertise-host tells clients
# 127.0.0.1:9290.
#
#   docker run --rm -p 127.0.0.1:9290:9290 -v strata-data:/data strata
#
# The CLI is in the image too: docker exec <container> strata cluster info
FROM scratch

COPY bin/strata-broker bin/strata /usr/local/bin/
ENV PATH=/usr/local/bin

# Listen on every interface of the container, keep the data in /data.
# Each STRATA_* variable is the flag of the same name (strata-broker --help);
# flags given to `docker run` or in docker-compose.yml win over them. A broker
# in a cluster also needs --advertise-host (the name others reach it by),
# --node-id, --join and --bootstrap-expect: see docker-compose.yml.
ENV STRATA_DATA_DIR=/data \
    STRATA_API_ADDR=0.0.0.0:9290 \
    STRATA_HTTP_ADDR=0.0.0.0:9291 \
    STRATA_RAFT_ADDR=0.0.0.0:9292 \
    STRATA_GOSSIP_ADDR=0.0.0.0:9293
VOLUME ["/data"]
WORKDIR /data

# 9290 gRPC API, 9291 HTTP (/metrics, /healthz, /readyz), 9292 Raft,
# 9293 gossip (TCP and UDP).
EXPOSE 9290 9291 9292 9293 9293/udp

# Healthy once the broker has joined a cluster and holds its metadata.
HEALTHCHECK --interval=5s --timeout=3s --start-period=30s --retries=3 \
    CMD ["strata-broker", "healthcheck", "--url", "http://127.0.0.1:9291/readyz"]

# SIGTERM (docker stop) is a clean shutdown: logs fsynced and closed.
STOPSIGNAL SIGTERM
ENTRYPOINT ["strata-broker"]
