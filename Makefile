# Developer shortcuts for Zart. `make` (or `make help`) lists the targets.
# Anything that needs PostgreSQL uses $DATABASE_URL if it answers and
# otherwise starts a throwaway cluster (ci/pg-up) that is stopped afterwards.

SHELL := bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help
.PHONY: help db-up test lint example bench schema-check new-migration

ARGS ?=

help: ## List the targets
	@printf 'Usage: make <target> [VAR=...]\n\n'
	@grep -hE '^[a-zA-Z0-9_-]+:.*## ' $(MAKEFILE_LIST) | \
		awk 'BEGIN {FS = ":.*## "}; {printf "  %-16s %s\n", $$1, $$2}'

db-up: ## Show how to start a throwaway PostgreSQL in your shell
	@echo 'make cannot change your shell; run this instead:'
	@echo '  eval "$$(ci/pg-up)"      # sets DATABASE_URL (and ZART_PG_* if it started one)'
	@echo '  ci/pg-down               # stops it again (only if pg-up started it)'

test: ## Run everything CI runs (ci/test); ARGS="claim" filters tests
	ci/test $(ARGS)

lint: ## cargo fmt --check, clippy -D warnings, rustdoc -D warnings
	cargo fmt --all --check
	cargo clippy --workspace --all-targets $$([[ -f Cargo.lock ]] && echo --locked) -- -D warnings
	RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps

example: ## Run the getting-started example end to end (ci/example)
	ci/example

bench: ## Run every performance figure (zart-load, release); ARGS="--only z2,z7" etc.
	CI_NAME=bench; export ZART_PG_DURABLE=1; source ci/lib.sh && with_pg && cargo run --release -p zart-benches --bin zart-load -- $(ARGS)

schema-check: ## Check migrations/ + sql/*.sql apply cleanly and match the DB (ci/schema-check)
	ci/schema-check

new-migration: ## Create migrations/V<next>__<NAME>.sql, e.g. make new-migration NAME=add_foo_index
	@name='$(NAME)'; \
	if [[ -z $$name ]]; then echo 'usage: make new-migration NAME=short_snake_case_name' >&2; exit 1; fi; \
	if [[ ! $$name =~ ^[A-Za-z0-9_]+$$ ]]; then echo "NAME must match [A-Za-z0-9_]+ (got '$$name')" >&2; exit 1; fi; \
	last=0; \
	for f in migrations/V*__*.sql; do \
		[[ -e $$f ]] || continue; \
		v=$${f#migrations/V}; v=$${v%%__*}; \
		[[ $$v =~ ^[0-9]+$$ ]] && (( 10#$$v > last )) && last=$$((10#$$v)); \
	done; \
	file="migrations/V$$((last + 1))__$${name}.sql"; \
	printf -- '-- %s: <what this migration changes and why>\n-- Functions live in sql/*.sql, not here.\n\n' "$$file" > "$$file"; \
	echo "created $$file"
