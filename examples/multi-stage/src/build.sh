#!/bin/sh
# The "compiler" of this example: renders the site from its sources into /out.
set -eu
mkdir -p /out/www
{
    echo "<h1>$(cat /src/title.txt)</h1>"
    echo "<p>built from $(ls /src | wc -l) source files</p>"
} > /out/www/index.html
cp /bin/busybox /out/busybox
