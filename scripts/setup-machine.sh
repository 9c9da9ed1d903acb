#!/usr/bin/env bash
# Makes this Debian machine ready for strata's tests, the way a normal
# desktop or CI runner is: the packages, two unprivileged test users (one
# with subordinate id ranges, one without), /dev/fuse usable by users, and
# unprivileged user namespaces on. Idempotent; says what it changes.
# With --packages-only: just the packages and the Rust toolchain check.
set -euo pipefail
SUDO=; [ "$(id -u)" -eq 0 ] || SUDO=sudo
PACKAGES=(uidmap fuse-overlayfs fuse3 busybox-static docker-registry skopeo umoci jq curl tmux buildah bc faketime git docker.io debootstrap qemu-user-static binfmt-support)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  $SUDO apt-get update -qq
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# Rust: the toolchain comes from rustup, which the machine image provides.
command -v cargo >/dev/null || export PATH="$HOME/.cargo/bin:$PATH"
command -v cargo >/dev/null || { echo "setup: cargo not found; install Rust with rustup" >&2; exit 1; }
for c in rustfmt clippy; do
  cargo "${c/rustfmt/fmt}" --version >/dev/null 2>&1 || rustup component add "$c"
done

[ "${1:-}" = --packages-only ] && exit 0

# Emulated RUN for other platforms: qemu-user through binfmt_misc, its
# handlers registered with the F flag (Debian's are), so they work inside
# strata's user and mount namespaces.
if [ ! -e /proc/sys/fs/binfmt_misc/register ]; then
  echo "setup: mounting binfmt_misc"
  $SUDO mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
fi
if ! grep -qs '^flags: .*F' /proc/sys/fs/binfmt_misc/qemu-aarch64; then
  echo "setup: enabling the qemu-user binfmt_misc handlers"
  $SUDO update-binfmts --enable || true
  grep -qs '^flags: .*F' /proc/sys/fs/binfmt_misc/qemu-aarch64 ||
    echo "setup: WARNING: qemu-aarch64 has no binfmt_misc handler with the F flag; emulated tests will fail" >&2
fi

# strata-test: the rootless tier's user, with ranges as useradd gives them.
if ! id strata-test >/dev/null 2>&1; then
  echo "setup: creating user strata-test (with subuid/subgid ranges)"
  $SUDO useradd -m -s /bin/bash strata-test
fi
grep -q '^strata-test:' /etc/subuid && grep -q '^strata-test:' /etc/subgid || {
  echo "setup: giving strata-test subordinate id ranges"
  $SUDO usermod --add-subuids 300000-365535 --add-subgids 300000-365535 strata-test
}
# strata-nosub: a user with no ranges, for the single-id fallback.
if ! id strata-nosub >/dev/null 2>&1; then
  echo "setup: creating user strata-nosub (no subuid/subgid ranges)"
  $SUDO useradd -m -s /bin/bash -K SUB_UID_COUNT=0 -K SUB_GID_COUNT=0 strata-nosub
fi

if [ "$(stat -c %a /dev/fuse 2>/dev/null)" != 666 ]; then
  echo "setup: making /dev/fuse usable by users (chmod 0666, as udev does on desktops)"
  $SUDO chmod 0666 /dev/fuse
fi
for kv in user.max_user_namespaces=15000 kernel.unprivileged_userns_clone=1 \
          kernel.apparmor_restrict_unprivileged_userns=0; do
  key=${kv%=*} want=${kv#*=} file=/proc/sys/${kv%=*}; file=${file//.//}
  [ -e "$file" ] || continue
  have=$(cat "$file")
  if { [ "$key" = user.max_user_namespaces ] && [ "$have" -eq 0 ]; } ||
     { [ "$key" != user.max_user_namespaces ] && [ "$have" != "$want" ]; }; then
    echo "setup: sysctl $kv (unprivileged user namespaces)"
    $SUDO sysctl -qw "$kv"
  fi
done
