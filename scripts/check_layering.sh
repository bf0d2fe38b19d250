#!/usr/bin/env bash
# Rejects upward includes between tether's layers (the table in docs/building.md, Layering) and
# implementation-only system headers in public headers (architecture rule: public headers never
# pull in epoll, zlib, OpenSSL or RE2).
#
# For every file in include/tether/<L>/ and src/<L>/ it reads each
#   #include "tether/<M>/..."   or   #include <tether/<M>/...>   (public headers)
#   #include "<M>/..."                                          (src/<M>'s private headers)
# and fails when M is not one of the layers L may include. Prints offenders, exits 1.
#
#   scripts/check_layering.sh [repo-root]
set -euo pipefail

root=${1:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
cd "$root"

# Layer -> the layers its files may include (itself included).
declare -A ALLOWED=(
  [base]="base"
  [loop]="loop base"
  [stream]="stream loop base"
  [net]="net stream loop base"
  # channel: frames work over pipes and in-memory streams, so not net. loop is allowed
  # because Task<T> lives there.
  [channel]="channel stream loop base"
  [brine]="brine base"
  # rpc talks to an abstract message channel: stream interfaces only (see CONCRETE below).
  [rpc]="rpc channel brine loop stream base"
  [service]="service rpc channel brine net stream loop base"
  [registry]="registry service net brine loop base"
)
LAYERS="base loop stream net channel brine rpc service registry"

# Stream headers that name concrete transports; rpc may not include these.
CONCRETE_STREAM_RE='(pipe|mem|memory|socket|tcp|tls|unix|process|subprocess|fd_stream)[^/]*\.hpp$'

# System headers that must stay out of include/ (they belong in src/).
FORBIDDEN_PUBLIC_RE='^[[:space:]]*#[[:space:]]*include[[:space:]]*[<"](sys/epoll\.h|zlib\.h|openssl/|re2/|liburing|sys/signalfd\.h|sys/timerfd\.h|sys/eventfd\.h)'

INCLUDE_RE='^[[:space:]]*#[[:space:]]*include[[:space:]]*[<"](tether/[^">]+)'
# Private headers of a layer, reached through src/ on the include path: #include "loop/poller.hpp".
PRIVATE_RE='^[[:space:]]*#[[:space:]]*include[[:space:]]*"((base|loop|stream|net|channel|brine|rpc|service|registry)/[^"]+)"'

offences=0
report() {
  echo "LAYERING: $1"
  offences=$((offences + 1))
}

checked=0
for layer in $LAYERS; do
  for dir in "include/tether/$layer" "src/$layer"; do
    [ -d "$dir" ] || continue
    while IFS= read -r -d '' file; do
      checked=$((checked + 1))
      # grep -n output: "<line>:<text>"
      while IFS= read -r hit; do
        [ -n "$hit" ] || continue
        line=${hit%%:*}
        text=${hit#*:}
        if [[ "$text" =~ $INCLUDE_RE ]]; then
          path=${BASH_REMATCH[1]}
          target=${path#tether/}
          target=${target%%/*}
        elif [[ "$text" =~ $PRIVATE_RE ]]; then
          path=${BASH_REMATCH[1]}
          target=${BASH_REMATCH[2]}
        else
          continue
        fi
        if [[ " $LAYERS " != *" $target "* ]]; then
          # tether/tether.hpp (umbrella) or an unknown directory: only tools may use these.
          report "$file:$line: includes $path (not a layer header; layers must include precise headers)"
          continue
        fi
        if [[ " ${ALLOWED[$layer]} " != *" $target "* ]]; then
          report "$file:$line: layer '$layer' includes $path from layer '$target' (allowed: ${ALLOWED[$layer]})"
          continue
        fi
        if [ "$layer" = rpc ] && [ "$target" = stream ] && [[ "$path" =~ $CONCRETE_STREAM_RE ]]; then
          report "$file:$line: layer 'rpc' includes concrete stream header $path (interfaces only)"
        fi
      done < <(grep -nE '^[[:space:]]*#[[:space:]]*include[[:space:]]*([<"]tether/|"[a-z]+/)' "$file" || true)

      if [[ "$dir" == include/* ]]; then
        while IFS= read -r hit; do
          [ -n "$hit" ] || continue
          report "$file:${hit%%:*}: public header includes an implementation-only system header: ${hit#*:}"
        done < <(grep -nE "$FORBIDDEN_PUBLIC_RE" "$file" || true)
      fi
    done < <(find "$dir" -type f \( -name '*.hpp' -o -name '*.h' -o -name '*.cpp' -o -name '*.ipp' \) -print0)
  done
done

# Directories under include/tether or src/ that are not known layers would escape the check.
for d in include/tether/*/ src/*/; do
  [ -d "$d" ] || continue
  name=$(basename "$d")
  if [[ " $LAYERS " != *" $name "* ]]; then
    report "$d: unknown layer directory (add it to scripts/check_layering.sh)"
  fi
done

if [ "$offences" -ne 0 ]; then
  echo "check_layering: $offences offence(s) in $checked files"
  exit 1
fi
echo "check_layering: OK ($checked files, no upward includes)"
