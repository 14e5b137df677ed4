#!/bin/bash
# Container health check of a Fleetpulse service, without curl in the image: GET /readyz on
# the port of METRICS_ADDR (host:port, default port 6066) over bash's /dev/tcp. Healthy only on
# HTTP 200; /readyz answers 503 while a check (Kafka, PostgreSQL, delivery...) fails.
set -u
addr=${METRICS_ADDR:-0.0.0.0:6066}
port=${addr##*:}
exec 3<>"/dev/tcp/127.0.0.1/$port" || exit 1
printf 'GET /readyz HTTP/1.0\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n' >&3
read -r -t 3 _ status _ <&3 || exit 1
[ "$status" = 200 ]
