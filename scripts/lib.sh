# What every script of spine shares: the paths and ports (env.sh) and how it talks to the user.
# Sourced, not run:  . "$(dirname "$0")/lib.sh"
#
#   say  progress, to stderr        warn  a problem it works around
#   die  a problem it cannot work around: the message, then exit 1
#
# Each line starts with the script's name ([up], [setup], ...), in colour only when stderr is a
# terminal and NO_COLOR is unset (https://no-color.org), so log files and pipes get plain text.

# shellcheck source=scripts/env.sh
. "$(dirname "${BASH_SOURCE[0]}")/env.sh"

SPINE_SCRIPT=${SPINE_SCRIPT:-$(basename "$0" .sh)}

_spine_print() { # colour code, message...
  local colour=$1; shift
  if [ -t 2 ] && [ -z "${NO_COLOR:-}" ]; then
    printf '\033[%sm[%s]\033[0m %s\n' "$colour" "$SPINE_SCRIPT" "$*" >&2
  else
    printf '[%s] %s\n' "$SPINE_SCRIPT" "$*" >&2
  fi
}
say() { _spine_print '1;32' "$@"; }
warn() { _spine_print '1;33' "$@"; }
die() { _spine_print '1;31' "$@"; exit 1; }
