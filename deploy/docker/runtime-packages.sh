#!/bin/sh
# runtime-packages.sh BINARY... - print the packages (one a line) that
# hold the shared libraries BINARY... load, as the dpkg database of this
# system says, leaving out the C runtime and CUDA's own libraries (a
# CUDA base image brings those).  The images' build stage runs it so the
# final stage installs exactly what the binaries need, whatever the
# distribution calls those packages this year.
set -eu
ldd "$@" | awk '/=> \// { print $3 }' | sort -u | while read -r lib; do
    real=$(readlink -f "$lib")
    for path in "$lib" "$real" "/usr$lib" "${lib#/usr}"; do
        if owner=$(dpkg -S "$path" 2>/dev/null); then
            echo "${owner%%:*}"
            break
        fi
    done
done | sort -u |
    grep -Ev '^(libc6|libgcc-s1|libstdc\+\+6|cuda-.*|libcudnn.*|libcublas.*|libnvjitlink.*|libcu.*)$' ||
    true
