#!/bin/bash
# tls_pair.sh VERSION PORT: openssl s_server + s_client on 127.0.0.1 exchanging known text both ways.
# VERSION: -tls1_2 or -tls1_3. Extra args to s_client after the port (e.g. -keylogfile F).
ver=${1:--tls1_3}; port=${2:-4433}; shift 2
d=$(dirname "$0")
( sleep 1; printf 'hello from server 1\nserver line 2\n'; sleep 2 ) |
  openssl s_server -quiet -accept $port -cert $d/cert.pem -key $d/key.pem $ver > /tmp/tls-proto/server.out 2>&1 &
srv=$!
sleep 0.5
( printf 'hello from client 1\nclient line 2\n'; sleep 2; printf 'client bye\n'; sleep 1 ) |
  openssl s_client -quiet -connect 127.0.0.1:$port $ver "$@" > /tmp/tls-proto/client.out 2>/dev/null
kill $srv 2>/dev/null; wait $srv 2>/dev/null
echo "server got:"; cat /tmp/tls-proto/server.out; echo "client got:"; cat /tmp/tls-proto/client.out
