# Sourced by scripts/serve and scripts/check: make ./.venv hold modeldepot (editable) with
# the extras named in $1 ("" or "test"). pip runs only when something it depends on changed
# (pyproject.toml, the extras, the Python version) or the venv is missing or broken, so a
# start with nothing changed takes no install time. Source changes need no reinstall: the
# install is editable. Delete .venv to force a clean one.
ensure_venv() {
  local extras="$1" spec="." stamp=".venv/.modeldepot-installed" want
  [ -n "$extras" ] && spec=".[$extras]"
  want="$(python3 -c 'import sys; print(sys.version)' | head -n1) ${extras} $(sha256sum pyproject.toml | cut -d' ' -f1)"
  if [ -x .venv/bin/python ] && [ -f "$stamp" ] && grep -qxF "$want" "$stamp" \
     && .venv/bin/python -c 'import modeldepot' 2>/dev/null; then
    return 0
  fi
  # A stamp for "test" also covers the plain install: check before reinstalling.
  if [ -z "$extras" ] && [ -f "$stamp" ] && [ -x .venv/bin/python ] \
     && grep -qF "$(sha256sum pyproject.toml | cut -d' ' -f1)" "$stamp" \
     && .venv/bin/python -c 'import modeldepot' 2>/dev/null; then
    return 0
  fi
  echo "installing modeldepot${extras:+ with [$extras]} into ./.venv (pyproject.toml changed or first run)" >&2
  if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
  fi
  .venv/bin/python -m pip install --quiet --upgrade pip
  .venv/bin/python -m pip install --quiet -e "$spec"
  echo "$want" > "$stamp"
}
