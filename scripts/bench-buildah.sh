# Sourced by the bench scripts once they have made their work dir $w:
# buildah gets a private store in $w (a wrapper first on PATH, so
# /usr/bin/time finds it too), so a bench never lists, reuses or `rmi -a`s
# the user's own buildah images (the interop tests' busybox, when a test
# run shares the machine). rm_work removes $w: the private store's files
# belong to subordinate ids, so it removes them in buildah's namespace.
mkdir -p "$w/bin"
printf '#!/bin/sh\nexec %s --root "%s" --runroot "%s" "$@"\n' \
  "$(command -v buildah)" "$w/buildah" "$w/buildah-run" >"$w/bin/buildah"
chmod +x "$w/bin/buildah"
export PATH="$w/bin:$PATH"
rm_work() { buildah unshare rm -rf "$w" 2>/dev/null || rm -rf "$w"; }
