# The entry points README.md gives. Each bootstraps a fresh machine first.
.PHONY: bootstrap demo test down chaos-full

bootstrap:
	scripts/bootstrap

demo: bootstrap
	xorj dev up

down:
	xorj dev down

test: bootstrap
	python3 -m pytest

# The `full` chaos set (every experiment, >= 500 trades each; local environment, then the cluster):
# on demand, and weekly from .ci/weekly. `make test` runs the `ci` set.
chaos-full: bootstrap
	scripts/chaos-full
